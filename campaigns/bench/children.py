"""What the benchmark runs in processes of its own (``multiprocessing``, spawned): a stream of
the outbox floor with psycopg only, and a stream of raw smtplib sends. No Django here: these
are the baselines Notifier is compared with."""

from __future__ import annotations

import datetime as dt
import json
import smtplib
import time
import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.string import TextLoader

#: What a NOT NULL column the benchmark does not know gets (a column added since).
FILLERS = {
    "bigint": 0,
    "integer": 0,
    "smallint": 0,
    "text": "",
    "character varying": "",
    "jsonb": {},
    "boolean": False,
}
WAITING = ["pending", "scheduled", "retrying"]


def _columns(cursor, table: str) -> dict[str, tuple[str, bool, bool]]:
    """{column: (data type, nullable, has a default)} of ``table``."""
    cursor.execute(
        "SELECT column_name, data_type, is_nullable = 'YES', "
        "column_default IS NOT NULL OR is_identity = 'YES' "
        "FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
        [table],
    )
    return {name: (kind, nullable, default) for name, kind, nullable, default in cursor.fetchall()}


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    return str(value).translate(_ESCAPES)


def _layout(
    columns: dict[str, tuple[str, bool, bool]], known: dict[str, Any], per_row: tuple[str, ...]
) -> tuple[list[str], list[str], list[int]]:
    """The columns a COPY writes (the known ones, and any other NOT NULL column without a
    default, with a filler), their values as COPY text, and where the per-row ones go."""
    names, values = [], []
    for name, (kind, nullable, has_default) in columns.items():
        if name in known or name in per_row:
            names.append(name)
            values.append(_text(known.get(name)))
        elif not nullable and not has_default:
            names.append(name)
            values.append(_text(FILLERS.get(kind, "")))
    return names, values, [names.index(name) for name in per_row]


def floor_stream(
    conninfo: dict[str, Any],
    message_table: str,
    attempt_table: str,
    stream: int,
    count: int,
    chunk: int,
    batch: int,
    barrier,
    results,
) -> None:
    """Write and send ``count`` messages the way the outbox does, with psycopg only: per
    chunk one COPY of new rows (ids from the sequence); per batch one claim (``UPDATE … WHERE
    id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING *``), then one result UPDATE (``FROM
    unnest``) and one COPY of attempt rows in one transaction. Puts (stream, rows sent,
    seconds) on ``results``.

    The client does as little as it can (rows written as COPY text, returned columns left
    as text) so that the figure is the database's."""
    try:
        with psycopg.connect(**conninfo) as conn:
            for name in ("jsonb", "json", "timestamptz", "uuid"):
                conn.adapters.register_loader(name, TextLoader)
            tables = (message_table, attempt_table)
            _floor(conn, tables, stream, count, chunk, batch, barrier, results)
    except BaseException as error:
        barrier.abort()
        results.put((stream, -1, f"{type(error).__name__}: {error}"))
        raise


def _floor(conn, tables, stream, count, chunk, batch, barrier, results):
    message_table, attempt_table = tables
    with conn.cursor() as cursor:
        message_columns = _columns(cursor, message_table)
        attempt_columns = _columns(cursor, attempt_table)
    conn.commit()
    table = sql.Identifier(message_table)
    claim = sql.SQL(
        "UPDATE {t} SET status = 'sending', lease_until = %s, attempts = attempts + 1, "
        "updated_at = %s WHERE id IN (SELECT id FROM {t} WHERE id = ANY(%s) AND "
        "(status = 'queued' OR (status = ANY(%s) AND next_attempt_at <= %s)) "
        "ORDER BY id FOR UPDATE SKIP LOCKED) RETURNING *"
    ).format(t=table)
    # What dispatch writes back per message (its RESULT_FIELDS): the rendered text differs
    # per row, the rest is the same for a batch of sends that all went through.
    constants = {
        "status": "sent",
        "status_reason": "",
        "next_attempt_at": None,
        "lease_until": None,
        "last_error": "",
        "provider_id": "",
        "subject": "Benchmark",
        "html": "",
    }
    sets = [
        sql.SQL("{} = %s").format(sql.Identifier(name))
        for name in constants
        if name in message_columns
    ]
    result = sql.SQL(
        "UPDATE {t} AS m SET {sets}, sent_at = %s, text = v.text, updated_at = now() "
        "FROM unnest(%s::int8[], %s::text[]) AS v(id, text) "
        "WHERE m.id = v.id AND m.status = 'sending'"
    ).format(t=table, sets=sql.SQL(", ").join(sets))
    constant_values = [value for name, value in constants.items() if name in message_columns]
    now = dt.datetime.now(dt.UTC)
    template = {
        "template_key": "bench-campaign/bench-null/en",
        "language": "en",
        "context": {"headline": "Benchmark"},
        "subject": "",
        "text": "",
        "html": "",
        "status": "queued",
        "attempts": 0,
        "max_attempts": 5,
        "next_attempt_at": now,
        "lease_until": now + dt.timedelta(seconds=600),
        "last_error": "",
        "provider_id": "",
        "delivery_status": "",
        "status_reason": "",
        "tag": "",
        "extra": {},
        "dedupe_key": "",
        "idempotency_key": "",
        "object_id": "",
        "event_id": 1,
        "channel_id": 1,
        "template_id": 1,
        "campaign_id": 1,
        "created_at": now,
        "updated_at": now,
    }
    names, base, slots = _layout(message_columns, template, ("id", "uuid", "address", "recipient"))
    copy_messages = sql.SQL("COPY {t} ({c}) FROM STDIN").format(
        t=table, c=sql.SQL(", ").join(map(sql.Identifier, names))
    )
    attempt = {"number": 1, "status": "sent", "error": "", "provider_id": ""}
    attempt_names, attempt_base, attempt_slots = _layout(
        attempt_columns, attempt, ("message_id", "at")
    )
    copy_attempts = sql.SQL("COPY {t} ({c}) FROM STDIN").format(
        t=sql.Identifier(attempt_table), c=sql.SQL(", ").join(map(sql.Identifier, attempt_names))
    )
    id_slot, uuid_slot, address_slot, recipient_slot = slots

    barrier.wait()
    started = time.perf_counter()
    sent = 0
    for first in range(0, count, chunk):
        size = min(chunk, count - first)
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [message_table, size],
            )
            ids = [row[0] for row in cursor.fetchall()]
            lines = []
            for offset, pk in enumerate(ids):
                number = first + offset
                address = f"s{stream}-{number}@bench.example"
                values = list(base)
                values[id_slot] = str(pk)
                values[uuid_slot] = str(uuid.uuid4())
                values[address_slot] = address
                values[recipient_slot] = (
                    f'{{"name": "Reader {number}", "email": "{address}", "language": "en", '
                    '"tz": "UTC", "plan": "pro"}'
                )
                lines.append("\t".join(values))
            with cursor.copy(copy_messages) as copy:
                copy.write("\n".join(lines) + "\n")
        conn.commit()
        for start in range(0, len(ids), batch):
            part = ids[start : start + batch]
            claimed_at = dt.datetime.now(dt.UTC)
            with conn.cursor() as cursor:
                cursor.execute(
                    claim,
                    [claimed_at + dt.timedelta(seconds=300), claimed_at, part, WAITING, claimed_at],
                )
                claimed_ids = [row[0] for row in cursor.fetchall()]
            conn.commit()
            sent_at = dt.datetime.now(dt.UTC)
            texts = [f"Hello Reader {pk}, Benchmark. Your plan: pro" for pk in claimed_ids]
            with conn.cursor() as cursor:
                cursor.execute(result, [*constant_values, sent_at, claimed_ids, texts])
                if claimed_ids:
                    at = sent_at.isoformat()
                    lines = []
                    for pk in claimed_ids:
                        values = list(attempt_base)
                        values[attempt_slots[0]] = str(pk)
                        values[attempt_slots[1]] = at
                        lines.append("\t".join(values))
                    with cursor.copy(copy_attempts) as copy:
                        copy.write("\n".join(lines) + "\n")
            conn.commit()
            sent += len(claimed_ids)
    results.put((stream, sent, time.perf_counter() - started))


def smtp_stream(
    host: str, port: int, stream: int, count: int, message: bytes, barrier, results
) -> None:
    """Send ``count`` copies of a pre-built message over one SMTP connection."""
    try:
        client = smtplib.SMTP(host, port, timeout=30)
        client.ehlo()
        barrier.wait()
        started = time.perf_counter()
        for number in range(count):
            client.sendmail("bench@bench.example", [f"raw{stream}-{number}@bench.example"], message)
        elapsed = time.perf_counter() - started
        client.quit()
        results.put((stream, count, elapsed))
    except BaseException as error:
        barrier.abort()
        results.put((stream, -1, f"{type(error).__name__}: {error}"))
        raise
