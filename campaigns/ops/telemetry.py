"""What a dispatch batch reports once its results are recorded: one log line for the batch,
one per failed message, and counters that ``/metrics`` exposes.

``batch_report`` is called once at the end of ``outbox.dispatch.message_dispatch``. It runs no
SQL query (a batch's query count is pinned by the tests) and makes one Redis round trip: a
pipeline of ``HINCRBY`` into one hash. The counters live in Redis rather than in the worker
process because workers run on any number of machines and die and restart at will, while
Prometheus scrapes one web endpoint: Redis is the place every worker already reaches, and a
counter there survives a worker's restart. (prometheus_client's multiprocess mode would need
a directory shared by the web process and every worker, so one machine only.) Losing Redis
resets the counters, which Prometheus's ``rate()`` reads as a counter reset.

Logs name message ids, channel keys, states and error classes, never a body, a subject, an
address or a provider's text (which can quote any of them): the message's row in the admin
has those.
"""

from __future__ import annotations

import bisect
import logging
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from redis.exceptions import RedisError

from campaigns.connections import redis_connection
from campaigns.domain.states import MessageStatus

logger = logging.getLogger("notifier.dispatch")

#: The Redis hash holding every counter (fields below); bounded by channels x states.
KEY = "notifier:metrics"
#: Upper bounds (seconds) of the send-latency histogram's buckets; +Inf is implied.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
#: Outcomes that are a failure of the try: logged one line each, counted by error class.
FAILURES = (MessageStatus.RETRYING, MessageStatus.FAILED, MessageStatus.BROKEN)
#: A send error is stored as "<exception class>: <provider's text>" (outbox.outcomes).
_ERROR_CLASS = re.compile(r"([A-Z][A-Za-z0-9_]*): ")
SEP = "|"  # channel keys are slugs: no "|" in them


def error_class(row: dict[str, Any]) -> str:
    """The class of what went wrong in an outcome row: the backend's exception class
    (``TransientError``, ``PermanentError``, ``AddressRejected`` or a subclass), ``broken``
    for a message that could not be built, or ``""`` when the row is no failed try (a
    rate-limited message put back to wait, a success)."""
    if row["status"] == MessageStatus.BROKEN:
        return "broken"
    if row["status"] in (MessageStatus.RETRYING, MessageStatus.FAILED):
        match = _ERROR_CLASS.match(row.get("last_error") or "")
        return match.group(1) if match else ""
    return ""


def id_ranges(ids: Iterable[int]) -> str:
    """``101-150,152``: a batch's sorted ids, short enough for a text log line."""
    parts: list[str] = []
    first = last = None
    for value in sorted(ids):
        if last is not None and value == last + 1:
            last = value
            continue
        if first is not None:
            parts.append(str(first) if first == last else f"{first}-{last}")
        first = last = value
    if first is not None:
        parts.append(str(first) if first == last else f"{first}-{last}")
    return ",".join(parts)


def _latency(message: Any, row: dict[str, Any]) -> float | None:
    """Seconds from when the message was asked for (``notify()``, or its scheduled time
    when later) to its send; None when it was not sent."""
    if row["status"] != MessageStatus.SENT or not row.get("sent_at"):
        return None
    asked = message.created_at
    if message.scheduled_at and message.scheduled_at > asked:
        asked = message.scheduled_at
    return max((row["sent_at"] - asked).total_seconds(), 0.0)


def batch_report(
    *, messages: Sequence[Any], outcomes: Sequence[dict[str, Any]], started: float
) -> None:
    """Log the batch and its failures, and add its outcomes to the counters. ``messages``
    are the claimed rows (channel loaded), ``outcomes`` the result rows written for them,
    ``started`` the ``time.monotonic()`` at which the batch began."""
    by_id = {message.pk: message for message in messages}
    keys = {}  # each channel's key, by id (a batch has one channel, or a few)
    for message in messages:
        if message.channel_id not in keys:
            keys[message.channel_id] = message.channel.key
    channels = sorted(set(keys.values()))
    counts = Counter(str(row["status"]) for row in outcomes)
    duration_ms = round((time.monotonic() - started) * 1000, 1)
    ids = sorted(by_id)
    logger.info(
        "dispatch batch on %s: %d claimed, %s in %.0f ms (ids %s)",
        ",".join(channels),
        len(messages),
        ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing",
        duration_ms,
        id_ranges(ids),
        extra={
            "kind": "dispatch.batch",
            "channel": ",".join(channels),
            "claimed": len(messages),
            "outcomes": dict(sorted(counts.items())),
            "message_ids": ids,
            "duration_ms": duration_ms,
        },
    )
    # Counted per (channel, status) and per (channel, bucket) first: the counter names are
    # written once per batch, not once per message.
    outcomes_by: Counter[tuple[str, str]] = Counter()
    attempts_by: Counter[str] = Counter()
    failures_by: Counter[tuple[str, str, str]] = Counter()
    latency_by: Counter[tuple[str, str]] = Counter()
    latency_sum: dict[str, float] = {}
    for row in outcomes:
        message = by_id.get(row["id"])
        if message is None:
            continue
        channel, status = keys[message.channel_id], str(row["status"])
        outcomes_by[channel, status] += 1
        if status == MessageStatus.SENT:
            attempts_by[channel] += 1
            seconds = _latency(message, row)
            if seconds is not None:
                index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
                bucket = LATENCY_BUCKETS[index] if index < len(LATENCY_BUCKETS) else "+Inf"
                latency_by[channel, str(bucket)] += 1
                latency_sum[channel] = latency_sum.get(channel, 0.0) + seconds
            continue
        kind = error_class(row)
        if status == MessageStatus.DEBUG or kind:
            attempts_by[channel] += 1
        if kind:
            failures_by[channel, kind, status] += 1
            logger.log(
                logging.INFO if status == MessageStatus.RETRYING else logging.WARNING,
                "send failed: message %d on %s, attempt %d: %s (%s)",
                message.pk,
                channel,
                row["attempts"],
                status,
                kind,
                extra={
                    "kind": "dispatch.failure",
                    "message_id": message.pk,
                    "message_uuid": str(message.uuid),
                    "channel": channel,
                    "status": status,
                    "error_class": kind,
                    "attempt": row["attempts"],
                },
            )
    increments: Counter[str] = Counter()
    for (channel, status), n in outcomes_by.items():
        increments[SEP.join(("outcome", channel, status))] += n
    for channel, n in attempts_by.items():
        increments[SEP.join(("attempt", channel))] += n
    for (channel, kind, status), n in failures_by.items():
        increments[SEP.join(("failure", channel, kind, status))] += n
    for (channel, bucket), n in latency_by.items():
        increments[SEP.join(("latency", channel, bucket))] += n
        increments[SEP.join(("latency_count", channel))] += n
    counters_add(increments, latency_sum)


def counters_add(increments: Counter[str], sums: dict[str, float]) -> None:
    """One round trip; a Redis outage loses these increments, never the batch."""
    if not increments:
        return
    try:
        with redis_connection().pipeline(transaction=False) as pipe:
            for name, value in increments.items():
                pipe.hincrby(KEY, name, value)
            for channel, seconds in sums.items():
                pipe.hincrbyfloat(KEY, SEP.join(("latency_sum", channel)), seconds)
            pipe.execute()
    except RedisError as error:
        logger.warning("metrics counters not updated for this batch: %s", error)


def counters_read(connection: Any) -> dict[str, float]:
    """Every counter, by field name (``outcome|email|sent`` …)."""
    return {
        (name.decode() if isinstance(name, bytes) else name): float(value)
        for name, value in connection.hgetall(KEY).items()
    }
