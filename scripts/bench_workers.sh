#!/usr/bin/env bash
# The scaling guide's measurement (docs/scaling.md, `make bench-workers`): the campaign
# benchmark (`manage.py bench_campaign`) with 1, 2 and 4 worker processes, one after the other.
# Redis is a private redis-server on a free port, so nothing else on the machine can flush its
# queue mid-run; the benchmark deletes the rows it writes.
#
#   DATABASE_URL  PostgreSQL, required (a database of its own is best: it writes 100,000s of rows)
#   RECIPIENTS    recipients per run (default 100000)
#   WORKERS       worker counts to measure (default "1 2 4")
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf 'bench: %s\n' "$*"; }

[[ "${DATABASE_URL:-}" == postgres* ]] || {
    say "set DATABASE_URL=postgres://… (the figures are PostgreSQL's; SQLite runs one worker)" >&2
    exit 1
}
command -v redis-server >/dev/null 2>&1 || { say "redis-server is not installed" >&2; exit 1; }
bash scripts/bootstrap.sh
PY="$ROOT/.venv/bin/python"

PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p var
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --dir "$ROOT/var" --logfile "$ROOT/var/bench-redis.log" &
REDIS_PID=$!
trap 'kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true' EXIT
export REDIS_URL="redis://127.0.0.1:$PORT/0"
export DEBUG="${DEBUG:-1}"  # the settings' development SECRET_KEY; nothing is served
for _ in $(seq 1 50); do
    "$PY" -c 'import os, redis; redis.Redis.from_url(os.environ["REDIS_URL"]).ping()' \
        2>/dev/null && break
    sleep 0.1
done

"$PY" manage.py migrate --noinput -v 0
say "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for workers in ${WORKERS:-1 2 4}; do
    say "--- $workers worker(s); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$PY" manage.py bench_campaign --recipients "${RECIPIENTS:-100000}" --workers "$workers"
done
