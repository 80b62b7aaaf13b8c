"""trigger: what one event costs the host site that triggers it.

``notify()`` for one recipient — a user object, and a plain mapping — on PostgreSQL: the
median CPU time of many calls (``time.process_time``; the after-commit enqueue included) and
the exact number of queries of one call (``CaptureQueriesContext``); the same trigger plus its
send (the dispatch of its one-message batch, in-process, null backend) on SQLite in memory,
in a process of its own, to compare with django-sitemessage; and a fan-out, one call to
``--fanout`` recipients, in CPU per message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext

from campaigns.api import notify
from campaigns.models import Message

from . import adapter
from .base import (
    ORDER_CONTEXT,
    PREFIX,
    Bench,
    BenchError,
    Options,
    Timer,
    bench_user,
    event_with_template,
    median,
    null_channel,
)

SCENARIO = "trigger"
EVENT = f"{PREFIX}order"
MAPPING = {"email": "ann@bench.example", "name": "Ann", "language": "en"}
#: django-sitemessage, trigger + send of one event, measured beside Notifier (the issue).
SITEMESSAGE_MS, SITEMESSAGE_QUERIES = 0.5, 3
WARM_UP = 5


def fixtures() -> tuple[str, Any]:
    """The event (with an English template on a null channel) and a user to notify."""
    event_with_template(EVENT, null_channel())
    return EVENT, bench_user()


def _timed(call, calls: int) -> tuple[float, float, int]:
    """Median CPU and wall ms of ``calls`` calls, and the queries of one more."""
    for _ in range(WARM_UP):
        call()
    cpu, wall = [], []
    for _ in range(calls):
        with Timer() as timer:
            call()
        cpu.append(timer.cpu * 1000)
        wall.append(timer.wall * 1000)
    # Empty the query log first: with DEBUG on it holds at most 9,000 queries, and a full one
    # would count none.
    reset_queries()
    with CaptureQueriesContext(connection) as queries:
        call()
    return median(cpu), median(wall), len(queries)


def run(bench: Bench) -> None:
    options = bench.options
    event, user = fixtures()
    for kind, recipient in (("user", user), ("mapping", MAPPING)):
        cpu, wall, queries = _timed(
            lambda r=recipient: notify(event, r, ORDER_CONTEXT), options.calls
        )
        label = "a user object" if kind == "user" else "a mapping"
        bench.figure(
            SCENARIO,
            f"notify_{kind}_cpu",
            cpu,
            "ms",
            f"notify() to {label}, CPU (median), PostgreSQL",
            target=1,
            sense="max",
        )
        bench.figure(
            SCENARIO,
            f"notify_{kind}_queries",
            queries,
            "queries",
            f"notify() to {label}, queries",
            target=3,
            sense="max",
        )
        bench.figure(
            SCENARIO, f"notify_{kind}_wall", wall, "ms", f"notify() to {label}, wall (median)"
        )
    bench.queue_empty()

    people = [
        {"email": f"f{i}@bench.example", "name": f"Reader {i}"} for i in range(options.fanout)
    ]
    with Timer() as timer:
        result = notify(event, people, ORDER_CONTEXT)
    if len(result.messages) != options.fanout:
        raise BenchError(f"the fan-out wrote {len(result.messages)} of {options.fanout} rows")
    bench.figure(
        SCENARIO,
        "fanout_cpu_per_msg",
        timer.cpu * 1000 / options.fanout,
        "ms/msg",
        f"fan-out, one notify() to {options.fanout} recipients, CPU per message",
        target=0.08,
        sense="max",
    )
    bench.queue_empty()

    if options.sqlite:
        _sqlite(bench)


def _sqlite(bench: Bench) -> None:
    """trigger + send on SQLite in memory, in a process of its own (it migrates first)."""
    manage = str(Path(settings.BASE_DIR) / "manage.py")
    child = bench.spawn(
        [sys.executable, manage, "bench", "--sqlite-child", "--calls", str(bench.options.calls)],
        name="sqlite",
        env={"DATABASE_URL": "sqlite://:memory:"},
    )
    try:
        child.wait(timeout=bench.options.timeout)
    except Exception:
        bench.stop(child)
        raise
    output = bench.log_tail(child, lines=200)
    bench.stop(child)
    lines = [line for line in output.splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        raise BenchError(f"the SQLite run failed ({child.returncode}):\n{output}")
    figures = json.loads(lines[-1])
    for kind, found in figures.items():
        label = "a user object" if kind == "user" else "a mapping"
        bench.figure(
            SCENARIO,
            f"sqlite_{kind}_cpu",
            found["cpu_ms"],
            "ms",
            f"trigger + send to {label}, CPU, SQLite (sitemessage: 0.45-0.52)",
            target=SITEMESSAGE_MS,
            sense="ref",
        )
        bench.figure(
            SCENARIO,
            f"sqlite_{kind}_queries",
            found["queries"],
            "queries",
            f"trigger + send to {label}, queries, SQLite (sitemessage: 3)",
            target=SITEMESSAGE_QUERIES,
            sense="ref",
        )


def sqlite_child(options: Options) -> dict[str, dict[str, float]]:
    """In the child (DATABASE_URL=sqlite://:memory:): migrate, then time trigger + send."""
    if connection.vendor != "sqlite":
        raise BenchError("--sqlite-child runs on SQLite only")
    call_command("migrate", verbosity=0, interactive=False)
    event, user = fixtures()
    found = {}
    for kind, recipient in (("user", user), ("mapping", MAPPING)):

        def trigger_and_send(recipient=recipient) -> None:
            result = notify(event, recipient, ORDER_CONTEXT)
            adapter.dispatch([m.pk for m in result.messages])

        cpu, _, queries = _timed(trigger_and_send, options.calls)
        found[kind] = {"cpu_ms": cpu, "queries": queries}
    sent = Message.objects.filter(status="sent").count()
    expected = 2 * (WARM_UP + options.calls + 1)
    if sent != expected:
        raise BenchError(f"SQLite: {sent} of {expected} messages were sent")
    adapter.queues_empty()
    return found
