#!/usr/bin/env bash
# Smoke test of the run command (`make smoke`, and CI): start scripts/run.sh on a temporary
# SQLite database and a free port, check that
#   1. the admin login page answers 200 and the printed admin login works,
#   2. the RQ worker delivers the messages seed_demo left queued (tag "demo-worker") and
#      nothing is left queued or sending,
#   3. a worker killed with SIGKILL is started again by run.sh, and delivers a new message,
#   4. Ctrl-C (SIGINT) stops run.sh with status 0 within 30 s, leaving no process behind
#      (web server, worker, scheduler, private redis-server).
# The developer's db.sqlite3 is not touched. Output of run.sh: var/smoke-run.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SITE_TIMEOUT="${SMOKE_SITE_TIMEOUT:-120}"
DELIVERY_TIMEOUT="${SMOKE_DELIVERY_TIMEOUT:-120}"
STOP_TIMEOUT=30

say() { printf 'smoke: %s\n' "$*"; }

bash scripts/bootstrap.sh
PY="$ROOT/.venv/bin/python"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/notifier-smoke.XXXXXX")"
mkdir -p var
LOG="$ROOT/var/smoke-run.log"
CHECK_LOG="$ROOT/var/smoke-check.log"
: >"$CHECK_LOG"

export DATABASE_URL="sqlite:///$TMP/db.sqlite3"
export DEBUG=1
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PORT
export SITE_URL="http://127.0.0.1:$PORT"
unset ADMIN_PASSWORD  # the random password run.sh prints is the one to check
# run.sh starts a private redis-server: no job of this run can reach another worker.
unset REDIS_URL

RUN_PID=""
CHILDREN=()

fail() {
    printf 'smoke: FAILED: %s\n' "$*" >&2
    echo "---- last lines of var/smoke-run.log ----" >&2
    tail -n 60 "$LOG" | cut -c1-300 >&2
    echo "----" >&2
    exit 1
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null; then
        kill -TERM -- "-$RUN_PID" 2>/dev/null || true
        sleep 2
        kill -KILL -- "-$RUN_PID" 2>/dev/null || true
    fi
    local pid
    for pid in "${CHILDREN[@]}"; do
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

http_status() {
    "$PY" - "$1" <<'EOF' 2>/dev/null || echo 000
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).status)
except urllib.error.HTTPError as error:
    print(error.code)
EOF
}

# Log in through the admin form; prints the path it ends on (/admin/ when it worked).
admin_login() {
    "$PY" - "http://127.0.0.1:$PORT" "$1" "$2" <<'EOF'
import http.cookiejar, re, sys, urllib.parse, urllib.request
base, username, password = sys.argv[1:]
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
page = opener.open(f"{base}/admin/login/?next=/admin/", timeout=10).read().decode()
token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": username,
                               "password": password, "next": "/admin/"}).encode()
request = urllib.request.Request(f"{base}/admin/login/?next=/admin/", data=data,
                                 headers={"Referer": f"{base}/admin/login/"})
response = opener.open(request, timeout=10)
print(urllib.parse.urlsplit(response.url).path)
EOF
}

# Counts of the demo messages, read from the run's database.
delivery_state() {
    "$PY" manage.py shell -v 0 -c '
from campaigns.management.commands.seed_demo import WORKER_TAG
from campaigns.models import Message
worker = Message.objects.filter(tag=WORKER_TAG)
print("worker=%d worker_sent=%d queued=%d sending=%d" % (
    worker.count(), worker.filter(status="sent").count(),
    Message.objects.filter(status="queued").count(),
    Message.objects.filter(status="sending").count(),
))' 2>>"$LOG" | tail -n 1
}

# --- 1. start, wait for the site ------------------------------------------------------------
say "starting scripts/run.sh on port $PORT with DATABASE_URL=$DATABASE_URL (log: var/smoke-run.log)"
START=$SECONDS
set -m  # run.sh in a process group of its own, with SIGINT not ignored (as in a terminal)
bash scripts/run.sh >"$LOG" 2>&1 &
RUN_PID=$!
set +m

until [ "$(http_status "http://127.0.0.1:$PORT/admin/login/")" = 200 ]; do
    kill -0 "$RUN_PID" 2>/dev/null || fail "scripts/run.sh exited before the site answered"
    [ $((SECONDS - START)) -lt "$SITE_TIMEOUT" ] ||
        fail "http://127.0.0.1:$PORT/admin/login/ did not answer 200 within ${SITE_TIMEOUT}s"
    sleep 0.5
done
T_SITE=$((SECONDS - START))
say "site answered 200 after ${T_SITE}s"

# What run.sh started (redis, web, worker, cron): each leads a process group of its own.
mapfile -t CHILDREN < <(pgrep -P "$RUN_PID" -f 'redis-server|manage.py' || true)
[ "${#CHILDREN[@]}" -ge 4 ] ||
    fail "expected redis-server, runserver, rqworker and rqcron under run.sh, found: \
$(ps -o pid=,args= --ppid "$RUN_PID" | tr '\n' ';')"
REDIS_PORT="$(sed -n 's/.*private redis-server on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG" | head -n 1)"

password="$(sed -n 's/^ *password: //p' "$LOG" | head -n 1)"
[ -n "$password" ] || fail "run.sh printed no admin password"
path="$(admin_login admin "$password")" || fail "logging in to the admin failed"
[ "$path" = /admin/ ] || fail "admin login with the printed password ended on $path, not /admin/"
say "admin login with the printed password works"

# --- 2. the worker delivers -------------------------------------------------------------------
state=""
until [[ "$state" =~ ^worker=([1-9][0-9]*)\ worker_sent=([0-9]+)\ queued=0\ sending=0$ ]] &&
    [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]; do
    kill -0 "$RUN_PID" 2>/dev/null || fail "scripts/run.sh exited while waiting for delivery"
    [ $((SECONDS - START)) -lt $((T_SITE + DELIVERY_TIMEOUT)) ] ||
        fail "demo messages not delivered by the worker within ${DELIVERY_TIMEOUT}s ($state)"
    sleep 1
    state="$(delivery_state)"
done
T_DELIVERED=$((SECONDS - START))
say "worker delivered the queued demo messages after ${T_DELIVERED}s ($state)"

# --- 3. a dead worker is started again --------------------------------------------------------
worker_pid() { pgrep -P "$RUN_PID" -f 'manage.py rqworker' | head -n 1; }
old_worker="$(worker_pid)"
[ -n "$old_worker" ] || fail "no rqworker process under run.sh"
kill -KILL -- "-$old_worker" 2>/dev/null || kill -KILL "$old_worker"
KILLED=$SECONDS
new_worker=""
until [ -n "$new_worker" ] && [ "$new_worker" != "$old_worker" ]; do
    kill -0 "$RUN_PID" 2>/dev/null || fail "scripts/run.sh exited after its worker was killed"
    [ $((SECONDS - KILLED)) -lt 30 ] || fail "run.sh did not start the killed worker again in 30s"
    sleep 0.5
    new_worker="$(worker_pid || true)"
done
CHILDREN+=("$new_worker")
say "run.sh started the killed worker (pid $old_worker) again (pid $new_worker)"

# A message queued now can only be delivered by the new worker (its job goes to run.sh's Redis).
[ -n "$REDIS_PORT" ] || fail "run.sh did not say on which port its redis-server listens"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" "$PY" manage.py shell -v 0 -c '
from campaigns.api import notify
from django.contrib.auth import get_user_model
notify("order-shipped", get_user_model().objects.get(username="alice"),
       {"order_id": "SMOKE-1", "tracking_url": "https://track.example.com/SMOKE-1"},
       channels=["console"], tag="smoke-restart")' >>"$LOG" 2>&1 ||
    fail "could not notify a message for the restarted worker"
restart_state() {
    "$PY" manage.py shell -v 0 -c '
from campaigns.models import Message
print(",".join(Message.objects.filter(tag="smoke-restart").values_list("status", flat=True)))
' 2>>"$LOG" | tail -n 1
}
until [ "$(restart_state)" = sent ]; do
    kill -0 "$RUN_PID" 2>/dev/null || fail "scripts/run.sh exited while waiting for delivery"
    [ $((SECONDS - KILLED)) -lt "$DELIVERY_TIMEOUT" ] ||
        fail "the restarted worker did not deliver within ${DELIVERY_TIMEOUT}s ($(restart_state))"
    sleep 1
done
say "the restarted worker delivered a new message $((SECONDS - KILLED))s after the kill"

# --- 4. Ctrl-C stops everything ---------------------------------------------------------------
STOP=$SECONDS
kill -INT "$RUN_PID"
while kill -0 "$RUN_PID" 2>/dev/null; do
    [ $((SECONDS - STOP)) -lt "$STOP_TIMEOUT" ] ||
        fail "scripts/run.sh still running ${STOP_TIMEOUT}s after SIGINT"
    sleep 0.2
done
code=0
wait "$RUN_PID" || code=$?
RUN_PID=""
[ "$code" = 0 ] || fail "scripts/run.sh exited with status $code after SIGINT (expected 0)"

left=()
for pid in "${CHILDREN[@]}"; do
    if kill -0 "$pid" 2>/dev/null || pgrep -g "$pid" >/dev/null 2>&1; then left+=("$pid"); fi
done
mapfile -t -O "${#left[@]}" left < <(
    pgrep -f "runserver 127\.0\.0\.1:$PORT( |$)" || true
    [ -z "$REDIS_PORT" ] || pgrep -f "redis-server 127\.0\.0\.1:$REDIS_PORT( |$)" || true
)
if [ "${#left[@]}" -gt 0 ]; then
    fail "processes left after SIGINT: $(ps -o pid=,args= -p "$(IFS=,; echo "${left[*]}")" |
        tr '\n' ';')"
fi
say "SIGINT stopped run.sh (status 0) and all it started in $((SECONDS - STOP))s"
say "OK: site up ${T_SITE}s, delivered ${T_DELIVERED}s, stopped $((SECONDS - STOP))s after SIGINT"
