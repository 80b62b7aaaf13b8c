#!/usr/bin/env bash
# The test command (`make test`): lint with ruff, then run the pytest suite.
#
# The suite runs on PostgreSQL and Redis (settings: notifier_site.test_settings):
#   TEST_DATABASE_URL  default postgres://postgres@127.0.0.1:5432/notifier
#                      (pytest-django creates and drops test_<name>)
#   TEST_REDIS_URL     default redis://127.0.0.1:6379/11 (flushed by the suite)
#   SKIP_LINT=1        run pytest only
#   TEST_WORKERS       pytest-xdist processes (default 2, one per core here; 0 runs in this
#                      process). Each has its own database (test_<name>_gw0, _gw1…) and
#                      Redis index (the given one plus the worker's number).
# Extra arguments go to pytest: bash scripts/test.sh tests/campaigns/test_seed_demo.py -x
#
# Exits with pytest's status; when pytest passes but ruff found problems, exits 1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/bootstrap.sh

export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/notifier}"
export REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/11}"
# pytest.ini_options names the settings module; a developer's exported one must not win.
unset DJANGO_SETTINGS_MODULE

lint_status=0
if [ "${SKIP_LINT:-0}" != 1 ]; then
    echo "test: ruff check ."
    .venv/bin/ruff check . --output-format concise || lint_status=1
    echo "test: ruff format --check ."
    .venv/bin/ruff format --check . || lint_status=1
fi

echo "test: pytest $* (DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL)"
pytest_status=0
# A test file runs whole in one worker (--dist loadfile): its module fixtures (a live server,
# a browser) start once. The slowest 15 tests are printed, to keep the suite short.
.venv/bin/pytest -n "${TEST_WORKERS:-2}" --dist loadfile --durations=15 "$@" || pytest_status=$?

ruff_state="ok"
[ "$lint_status" -eq 0 ] || ruff_state="found problems"
[ "${SKIP_LINT:-0}" != 1 ] || ruff_state="skipped"
if [ "$pytest_status" -ne 0 ]; then
    echo "test: FAILED (pytest exit $pytest_status; ruff $ruff_state)" >&2
    exit "$pytest_status"
fi
if [ "$lint_status" -ne 0 ]; then
    echo "test: FAILED (pytest passed; ruff $ruff_state, see above)" >&2
    exit 1
fi
echo "test: OK"
