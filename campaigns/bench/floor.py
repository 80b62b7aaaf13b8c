"""floor: what PostgreSQL alone allows for the outbox, with psycopg only (no Django, no RQ).

Two streams (processes, each with its own connection; as many as ``--workers``) write and
send ``--recipients`` messages into a scratch table with the message table's columns: per
chunk of ``CAMPAIGN_CHUNK`` rows one COPY; per batch of ``BATCH_SIZE`` one claim (``UPDATE …
WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING *``), then one result UPDATE (``FROM
unnest``) and one COPY of attempt rows, committed together (see ``children.floor_stream``).
Foreign keys are left out in every variant (their checks are per-row lookups of the event,
channel, template and campaign the real table pays on top).

Measured three times, with the scratch tables carrying:

- ``current``: every index of today's message and attempt tables, read from ``pg_indexes``;
- ``essential``: the primary keys and the indexes in ``ESSENTIAL`` (what a product promise
  or a path that runs per message, per poll or per callback needs; see the reasons there);
- ``none``: the primary keys only (the claim finds its rows by id).
"""

from __future__ import annotations

import multiprocessing
import re
import threading

import psycopg
from psycopg import sql

from campaigns.conf import app_settings
from campaigns.models import Message, MessageAttempt

from . import children
from .base import SCRATCH_TABLES, Bench, BenchError, connection_info

SCENARIO = "floor"
SCRATCH_MESSAGE, SCRATCH_ATTEMPT = SCRATCH_TABLES
VARIANTS = ("current", "essential", "none")
#: The issue's measurements on this machine (msg/s), to compare runs and machines.
REFERENCE = {"current": 9_400, "essential": 14_700, "none": 21_900}

#: Message indexes the product needs besides the primary key, and why. The others serve a
#: rare operator action, or nothing: the foreign-key indexes of event, channel and template
#: (only deleting one of those reads them), address and (status, created) (admin search and
#: list filters), campaign + status (message_once_per_campaign leads with the campaign too),
#: delivery status and trigger user (admin filters), and the uuid's unique index (a random
#: uuid4, looked up only within one user's inbox, which message_user_inbox_idx finds).
ESSENTIAL = {
    "message_waiting_due_idx": "the sweep: waiting rows whose time has come",
    "message_lease_idx": "the sweep: queued or sending rows whose lease ran out (recovery)",
    "message_once_per_campaign": "a recipient gets a campaign once, whatever a chunk job does",
    "message_one_active_per_key": "trigger behaviours' safety net (rows with a once key only)",
    "message_one_sent_per_once_key": "send_once's safety net (rows with a send key only)",
    "message_user_inbox_idx": "a user's inbox, newest first (rows with a user only)",
    "message_user_unread_idx": "the unread badge, polled every 10 s per open page",
    "message_provider_idx": "provider callbacks find their message (rows with a provider id)",
    "message_content_idx": "messages_for_content() (rows with a content object only)",
    "message_idempotency_idx": "notify(idempotency_key=…) finds the first call's rows",
}
#: Attempt indexes the product needs besides the primary key (the foreign-key index on
#: message_id is the first column of this one).
ATTEMPT_ESSENTIAL = {"attempt_message_idx": "a message's delivery log, in order"}

_INDEXDEF = re.compile(r"^(CREATE (?:UNIQUE )?INDEX )(\S+)( ON )(\S+)( .*)$", re.DOTALL)


def table_indexes(cursor, table: str) -> list[tuple[str, str, bool]]:
    """(name, definition, is the primary key) of each index of ``table``."""
    cursor.execute(
        "SELECT i.indexname, i.indexdef, c.conname IS NOT NULL FROM pg_indexes i "
        "LEFT JOIN pg_constraint c ON c.conname = i.indexname AND c.contype = 'p' "
        "AND c.conrelid = i.tablename::regclass "
        "WHERE i.schemaname = current_schema() AND i.tablename = %s ORDER BY i.indexname",
        [table],
    )
    return cursor.fetchall()


def _chosen(indexes, variant: str, essential: dict[str, str]) -> list[tuple[str, str, bool]]:
    if variant == "current":
        return list(indexes)
    if variant == "essential":
        return [i for i in indexes if i[2] or i[0] in essential]
    return [i for i in indexes if i[2]]


def scratch_drop(cursor) -> None:
    cursor.execute(
        sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
            sql.Identifier(SCRATCH_MESSAGE), sql.Identifier(SCRATCH_ATTEMPT)
        )
    )


def scratch_create(cursor, variant: str) -> tuple[list[str], list[str]]:
    """The scratch tables, empty, with the variant's indexes; returns the index names (of
    the real tables) each carries."""
    scratch_drop(cursor)
    made: list[list[str]] = []
    for real, scratch, essential in (
        (Message._meta.db_table, SCRATCH_MESSAGE, ESSENTIAL),
        (MessageAttempt._meta.db_table, SCRATCH_ATTEMPT, ATTEMPT_ESSENTIAL),
    ):
        cursor.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING IDENTITY)").format(
                sql.Identifier(scratch), sql.Identifier(real)
            )
        )
        names = []
        chosen = _chosen(table_indexes(cursor, real), variant, essential)
        for number, (name, definition, _) in enumerate(chosen):
            match = _INDEXDEF.match(definition)
            if match is None:
                raise BenchError(f"cannot read the definition of index {name}: {definition}")
            # A definition PostgreSQL printed itself, with the names swapped for the scratch's.
            statement = f"{match[1]}{scratch}_{number}{match[3]}{scratch}{match[5]}"
            cursor.execute(statement)
            names.append(name)
        made.append(names)
    return made[0], made[1]


def measure(bench: Bench, variant: str, count: int) -> float:
    """Messages per second through the floor's streams, with the variant's indexes."""
    conninfo = connection_info()
    streams = max(1, bench.options.workers)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(streams + 1)
    results = context.Queue()
    shares = [count // streams + (1 if i < count % streams else 0) for i in range(streams)]
    processes = [
        context.Process(
            target=children.floor_stream,
            args=(
                conninfo,
                SCRATCH_MESSAGE,
                SCRATCH_ATTEMPT,
                number,
                share,
                app_settings.CAMPAIGN_CHUNK,
                app_settings.BATCH_SIZE,
                barrier,
                results,
            ),
            daemon=True,
        )
        for number, share in enumerate(shares)
    ]
    try:
        with psycopg.connect(**conninfo, autocommit=True) as conn, conn.cursor() as cursor:
            message_indexes, attempt_indexes = scratch_create(cursor, variant)
        bench.note(
            f"{variant}: {len(message_indexes)} message indexes, {len(attempt_indexes)} "
            f"attempt indexes ({', '.join(message_indexes + attempt_indexes)})"
        )
        for process in processes:
            process.start()
        try:
            barrier.wait(timeout=120)
        except threading.BrokenBarrierError:
            raise BenchError(f"a floor stream failed to start: {_errors(results)}") from None
        outcomes = [results.get(timeout=bench.options.timeout) for _ in processes]
        failed = [str(o[2]) for o in outcomes if o[1] < 0]
        if failed:
            raise BenchError(f"a floor stream failed: {'; '.join(failed)}")
        sent = sum(o[1] for o in outcomes)
        if sent != count:
            raise BenchError(f"the floor streams sent {sent} of {count} messages")
        return sent / max(o[2] for o in outcomes)
    except BaseException:
        for process in processes:  # no waiting for a stream that lost its parent's interest
            if process.is_alive():
                process.kill()
        raise
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
        with psycopg.connect(**conninfo, autocommit=True) as conn, conn.cursor() as cursor:
            scratch_drop(cursor)


def _errors(results) -> str:
    found = []
    while not results.empty():
        found.append(str(results.get()[2]))
    return "; ".join(found) or "no error reported"


LABELS = {
    "current": "floor, today's indexes",
    "essential": "floor, essential indexes",
    "none": "floor, primary keys only",
}


def run(bench: Bench) -> None:
    count = bench.options.recipients
    bench.note(
        f"{count} messages, {max(1, bench.options.workers)} streams, chunks of "
        f"{app_settings.CAMPAIGN_CHUNK}, batches of {app_settings.BATCH_SIZE}"
    )
    for variant in VARIANTS:
        rate = measure(bench, variant, count)
        bench.floor.setdefault(bench.round, {})[variant] = rate
        bench.figure(
            SCENARIO,
            f"{variant}_indexes",
            rate,
            "msg/s",
            LABELS[variant],
            target=REFERENCE[variant],
            sense="ref",
        )


def essential_rate(bench: Bench) -> tuple[float, bool]:
    """This round's floor with the essential indexes (measured now when the run has none);
    and whether it was measured now."""
    rate = bench.floor.get(bench.round, {}).get("essential")
    if rate is not None:
        return rate, False
    rate = measure(bench, "essential", bench.options.recipients)
    bench.floor.setdefault(bench.round, {})["essential"] = rate
    return rate, True
