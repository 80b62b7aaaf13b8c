"""A per-message record of send results, written to Redis right after each send.

A dispatch job writes its results to the database in one statement at the end of its batch
(so SQL queries do not grow with the batch). Between a send and that statement the result
lives here, so a worker that dies mid-batch repeats at most the one message in flight: the
sweep, reclaiming the batch, applies what the journal says was already sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from redis.exceptions import RedisError

from ..queue import redis_connection

logger = logging.getLogger("notifier.journal")
KEY = "notifier:journal"


def journal_record(outcome: dict[str, Any]) -> None:
    """Keep one outcome (a dict of the row's new values, with ``id`` and ``attempts``)."""
    try:
        redis_connection().hset(KEY, str(outcome["id"]), json.dumps(outcome, default=str))
    except RedisError as error:  # the batch goes on; at worst this message is repeated
        logger.warning("journal write failed for message %s: %s", outcome["id"], error)


def journal_load(ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    ids = [int(i) for i in ids]
    if not ids:
        return {}
    values = redis_connection().hmget(KEY, [str(i) for i in ids])
    return {i: json.loads(v) for i, v in zip(ids, values, strict=True) if v is not None}


def journal_clear(ids: Iterable[int]) -> None:
    ids = [str(i) for i in ids]
    if not ids:
        return
    try:
        redis_connection().hdel(KEY, *ids)
    except RedisError as error:
        logger.warning("journal clear failed for %d message(s): %s", len(ids), error)
