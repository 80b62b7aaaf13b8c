#!/usr/bin/env bash
# The run command (`make run`): a development site with demo data, an RQ worker and the
# sweep scheduler, all stopped together by Ctrl-C. The worker and the scheduler are started
# again if they end (supervision); the web server or Redis ending stops everything.
#
#   PORT          web port (default 8000)
#   DATABASE_URL  default: SQLite in db.sqlite3
#   REDIS_URL     default: a private redis-server on a free port, started and stopped here
#                 (logs in var/redis.log)
#   ADMIN_PASSWORD  the admin's password (default: a new random one, printed)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'run: %s\n' "$*"; }
die() { printf 'run: %s\n' "$*" >&2; exit 1; }

bash scripts/bootstrap.sh
PY="$ROOT/.venv/bin/python"

PORT="${PORT:-8000}"
export DEBUG="${DEBUG:-1}"  # the settings' default SECRET_KEY needs it
export SITE_URL="${SITE_URL:-http://127.0.0.1:$PORT}"
export PYTHONUNBUFFERED=1
mkdir -p var

# --- processes we start, and how they stop ------------------------------------------------
pids=()
names=()
commands=()  # each process's command line, quoted, so a supervised one can be started again
started=()   # $SECONDS when each was last started
delays=()    # seconds a supervised process waits before its next restart
due=()       # $SECONDS at which a dead supervised process is started again ("" = not dead)
stopping=0
# Processes started again when they end (a crash, an outage they did not outlive): with these
# two down, nothing is delivered. The web server and Redis ending stop everything instead.
SUPERVISED=" worker cron "

# Start "$@" as process NAME.
start() {
    local name="$1"
    shift
    pids+=("")
    names+=("$name")
    commands+=("$(printf '%q ' "$@")")
    started+=(0)
    delays+=(1)
    due+=("")
    launch "$((${#pids[@]} - 1))"
}

# (Re)start process number $1 in a session of its own (so a terminal's Ctrl-C reaches only
# this script, which then stops everything in order), its output prefixed with its name by a
# sed that outlives Ctrl-C, so the processes' shutdown messages still show.
launch() {
    local i="$1" name="${names[$1]}"
    eval "set -- ${commands[$i]}"
    if command -v setsid >/dev/null 2>&1; then
        setsid "$@" </dev/null > >(trap '' INT; exec sed -u "s/^/[$name] /") 2>&1 &
    else
        "$@" </dev/null > >(trap '' INT; exec sed -u "s/^/[$name] /") 2>&1 &
    fi
    pids[$i]="$!"
    started[$i]="$SECONDS"
    due[$i]=""
}

alive() { kill -0 "$1" 2>/dev/null; }

# Send SIGTERM to each given index of pids (its whole process group), wait up to 15 s, then
# SIGKILL what is left.
stop_indexes() {
    local i pid deadline
    for i in "$@"; do
        pid="${pids[$i]}"
        alive "$pid" || continue
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 15))
    for i in "$@"; do
        pid="${pids[$i]}"
        while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        if alive "$pid"; then
            say "${names[$i]} (pid $pid) did not stop in 15 s: killing it"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

cleanup() {
    local status=$?
    trap - INT TERM HUP EXIT
    stopping=1
    if [ "${#pids[@]}" -gt 0 ]; then
        say "stopping ${names[*]}"
        # The web server, worker and scheduler first; Redis, which they use, last.
        local i others=() redis=()
        for i in "${!pids[@]}"; do
            if [ "${names[$i]}" = redis ]; then redis+=("$i"); else others+=("$i"); fi
        done
        [ "${#others[@]}" -eq 0 ] || stop_indexes "${others[@]}"
        [ "${#redis[@]}" -eq 0 ] || stop_indexes "${redis[@]}"
        say "stopped"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 0' INT TERM HUP  # Ctrl-C is the normal way to stop: exit 0 (cleanup runs on EXIT)

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_free() {
    "$PY" -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

http_ok() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
    else
        "$PY" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
    fi
}

redis_ping() {
    "$PY" -c 'import sys, redis
redis.Redis.from_url(sys.argv[1], socket_timeout=1).ping()' "$1" 2>/dev/null
}

# --- Redis --------------------------------------------------------------------------------
port_free "$PORT" || die "port $PORT is in use: stop what listens there or run with PORT=NNNN"

if [ -n "${REDIS_URL:-}" ]; then
    say "using REDIS_URL=$REDIS_URL"
    redis_ping "$REDIS_URL" || die "cannot reach Redis at REDIS_URL=$REDIS_URL"
else
    if ! command -v redis-server >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            say "redis-server is missing: installing it with apt-get"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
        fi
    fi
    command -v redis-server >/dev/null 2>&1 || die "no REDIS_URL and no redis-server binary: \
install Redis (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) \
or set REDIS_URL=redis://host:port/0"
    REDIS_PORT="$(free_port)"
    say "starting a private redis-server on 127.0.0.1:$REDIS_PORT (log: var/redis.log)"
    start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --daemonize no --dir "$ROOT/var" --logfile "$ROOT/var/redis.log"
    export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
    for _ in $(seq 1 100); do
        redis_ping "$REDIS_URL" && break
        alive "${pids[0]}" || die "redis-server exited at start; see var/redis.log"
        sleep 0.1
    done
    redis_ping "$REDIS_URL" || die "redis-server did not answer within 10 s; see var/redis.log"
fi

# --- database, demo data, admin -------------------------------------------------------------
say "database: ${DATABASE_URL:-sqlite ($ROOT/db.sqlite3)}"
"$PY" manage.py migrate --noinput -v 1
"$PY" manage.py seed_demo
ADMIN_LOGIN="$("$PY" manage.py ensure_admin)"
echo "$ADMIN_LOGIN"

# --- the site, a worker, the scheduler --------------------------------------------------------
start web "$PY" manage.py runserver "127.0.0.1:$PORT" --noreload
# Both outlive a Redis outage (campaigns/workers.py); should either end anyway, it is started
# again (check_children).
start worker "$PY" manage.py rqworker notifier notifier-bulk default \
    --worker-class campaigns.workers.SimpleWorker
start cron "$PY" manage.py notifier_cron

# A supervised process that ended is started again: after 1 s, doubling (up to 30 s) while it
# keeps ending within 30 s of its start. Any other process ending stops everything and fails.
check_children() {
    local i code
    for i in "${!pids[@]}"; do
        alive "${pids[$i]}" && continue
        [ "$stopping" = 1 ] && return 0
        if [ -n "${due[$i]}" ]; then
            if [ "$SECONDS" -ge "${due[$i]}" ]; then
                launch "$i"
                say "${names[$i]} started again (pid ${pids[$i]})"
            fi
            continue
        fi
        wait "${pids[$i]}" 2>/dev/null && code=0 || code=$?
        if [[ "$SUPERVISED" != *" ${names[$i]} "* ]]; then
            die "${names[$i]} (pid ${pids[$i]}) exited unexpectedly (status $code); stopping"
        fi
        if [ $((SECONDS - started[$i])) -ge 30 ]; then
            delays[$i]=1
        fi
        due[$i]=$((SECONDS + delays[$i]))
        say "${names[$i]} (pid ${pids[$i]}) exited (status $code): starting it again in ${delays[$i]} s"
        delays[$i]=$((delays[$i] * 2 > 30 ? 30 : delays[$i] * 2))
    done
}

# Wait for the site (the web server or Redis ending meanwhile stops everything and fails).
LOGIN_URL="http://127.0.0.1:$PORT/admin/login/"
deadline=$((SECONDS + 90))
until http_ok "$LOGIN_URL"; do
    check_children
    [ "$SECONDS" -lt "$deadline" ] || die "the site did not answer at $LOGIN_URL within 90 s"
    sleep 0.2
done

cat <<EOF

================================================================================
 Notifier is running: http://127.0.0.1:$PORT/admin/
$(printf '%s\n' "$ADMIN_LOGIN" | sed 's/^/ /')
 demo users: alice, bob (password demo-password-123)
 queues: http://127.0.0.1:$PORT/django-rq/    Redis: $REDIS_URL
 Press Ctrl-C to stop.
================================================================================

EOF

while true; do
    check_children
    sleep 1 &
    wait "$!" || true  # returns at once when a signal arrives, so its trap runs now
done
