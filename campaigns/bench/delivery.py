"""delivery: from a committed one-recipient ``notify()`` to ``sent``.

In this process first (no workers): the CPU of dispatching ``--dispatch`` queued messages in
batches of ``BATCH_SIZE`` (null backend), and of a one-message batch, client and server side
(the PostgreSQL backend's CPU, read from /proc when the server runs on this machine). Then
with ``--workers`` worker processes started as ``scripts/run.sh`` starts them:
``--deliveries`` one-recipient calls committed before the workers take any, sent by them,
from the first ``sent_at`` to the last (the target: the workers' rate); the latency of single
calls on idle workers (commit to ``sent_at``); and ``--deliveries`` calls committed one by one
while the workers run, in messages per second from the first commit to the last
``sent_at`` (the calls' own pace beside it, as one producer process can bound it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.db import connection
from django.db.models import Max, Min

from campaigns.api import notify
from campaigns.conf import app_settings
from campaigns.models import Message

from . import adapter
from .base import (
    ORDER_CONTEXT,
    PREFIX,
    Bench,
    BenchError,
    Timer,
    committed,
    event_with_template,
    null_channel,
    percentile,
    wait_for,
)

SCENARIO = "delivery"
EVENT = f"{PREFIX}delivery"


def _recipient(number: int) -> dict[str, str]:
    return {"email": f"d{number}@bench.example", "name": f"Reader {number}", "language": "en"}


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def server_cpu_seconds(pid: int) -> float | None:
    """CPU time used so far by the PostgreSQL backend process ``pid``, when the server runs
    on this machine (its /proc entry is readable); else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def in_process(bench: Bench) -> None:
    options = bench.options
    size = app_settings.BATCH_SIZE
    result = notify(EVENT, [_recipient(i) for i in range(options.dispatch)], ORDER_CONTEXT)
    bench.queue_empty()  # their jobs: this process sends them
    ids = [m.pk for m in result.messages]
    cpu = 0.0
    for start in range(0, len(ids), size):
        with Timer() as timer:
            adapter.dispatch(ids[start : start + size])
        cpu += timer.cpu
    sent = Message.objects.filter(pk__in=ids, status="sent").count()
    if sent != len(ids):
        raise BenchError(f"in-process dispatch sent {sent} of {len(ids)} messages")
    bench.figure(
        SCENARIO,
        "dispatch_cpu_per_msg",
        cpu * 1e6 / len(ids),
        "us/msg",
        f"dispatch of {len(ids)} queued messages in-process, CPU per message",
        target=179,
        sense="ref",
    )

    client = server = 0.0
    server_known = True
    pid = backend_pid()
    for number in range(options.batches):
        one = notify(EVENT, _recipient(number), ORDER_CONTEXT).messages[0].pk
        before = server_cpu_seconds(pid)
        with Timer() as timer:
            adapter.dispatch([one])
        after = server_cpu_seconds(pid)
        client += timer.cpu
        if before is None or after is None:
            server_known = False
        else:
            server += after - before
    bench.queue_empty()
    bench.figure(
        SCENARIO,
        "one_batch_client_cpu",
        client * 1000 / options.batches,
        "ms",
        "dispatch of a one-message batch, client CPU (mean)",
        target=7.3,
        sense="ref",
    )
    if server_known:
        bench.figure(
            SCENARIO,
            "one_batch_server_cpu",
            server * 1000 / options.batches,
            "ms",
            "dispatch of a one-message batch, PostgreSQL CPU (mean)",
            target=2.5,
            sense="ref",
        )
    else:
        bench.note("the PostgreSQL server's CPU is not readable here (not on this machine)")


def _calls(count: int, offset: int) -> tuple[list[int], float, float]:
    """``count`` one-recipient calls committed one by one: their message ids, and the
    first and last commit times."""
    ids, first, last = [], None, None
    for number in range(offset, offset + count):
        result, at = committed(lambda n=number: notify(EVENT, _recipient(n), ORDER_CONTEXT))
        ids.append(result.messages[0].pk)
        first = first if first is not None else at
        last = at
    return ids, first, last


def _all_sent(ids: list[int], workers, timeout: float) -> tuple[float, float]:
    """Wait until every message is sent; returns the first and last ``sent_at``."""
    # The ids come from the table's sequence, in order: a range polls cheaper than a list.
    messages = Message.objects.filter(event__key=EVENT, pk__range=(min(ids), max(ids)))
    wait_for(
        lambda: messages.filter(status="sent").count() == len(ids),
        timeout=timeout,
        what=f"{len(ids)} messages to be sent",
        interval=0.1,
        check=workers.check,
    )
    span = messages.aggregate(first=Min("sent_at"), last=Max("sent_at"))
    return span["first"].timestamp(), span["last"].timestamp()


def run(bench: Bench) -> None:
    options = bench.options
    event_with_template(EVENT, null_channel())
    in_process(bench)

    # A backlog of one-message jobs, written before the workers take any.
    backlog, _, _ = _calls(options.deliveries, 0)
    with bench.workers(held=True) as workers:
        workers.release()
        first_sent, last_sent = _all_sent(backlog, workers, options.timeout)
        bench.figure(
            SCENARIO,
            "drain",
            (len(backlog) - 1) / (last_sent - first_sent),
            "msg/s",
            f"{len(backlog)} one-recipient calls sent by the workers, first to last sent",
            target=1000,
            sense="min",
        )

        latencies = []
        for number in range(options.latency_samples):
            result, at = committed(lambda n=number: notify(EVENT, _recipient(n), ORDER_CONTEXT))
            pk = result.messages[0].pk
            sent_at = wait_for(
                lambda pk=pk: (
                    Message.objects.filter(pk=pk, status="sent")
                    .values_list("sent_at", flat=True)
                    .first()
                ),
                timeout=options.timeout,
                what="a message to be sent",
                interval=0.002,
                check=workers.check,
            )
            latencies.append((sent_at.timestamp() - at) * 1000)
            time.sleep(0.05)  # idle again
        bench.figure(
            SCENARIO,
            "latency_p50",
            percentile(latencies, 0.5),
            "ms",
            "one call on idle workers, commit to sent (p50)",
            target=50,
            sense="max",
        )
        bench.figure(
            SCENARIO,
            "latency_p99",
            percentile(latencies, 0.99),
            "ms",
            "one call on idle workers, commit to sent (p99)",
        )

        ids, first, last = _calls(options.deliveries, options.deliveries)
        _, last_sent = _all_sent(ids, workers, options.timeout)
        bench.figure(
            SCENARIO,
            "throughput",
            len(ids) / (last_sent - first),
            "msg/s",
            f"{len(ids)} one-recipient calls while the workers run, first commit to last sent "
            "(bound by the one producer process beside them)",
        )
        bench.figure(
            SCENARIO,
            "producer",
            (len(ids) - 1) / (last - first) if last > first else float("inf"),
            "calls/s",
            "their calls' own pace (one process, one by one)",
        )
