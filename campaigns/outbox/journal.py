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

from campaigns.connections import redis_connection

logger = logging.getLogger("notifier.journal")
KEY = "notifier:journal"
#: The rendered content of a result: journaled only for backends whose message row is what
#: the recipient reads (the inbox). Elsewhere a row recovered from the journal gets its
#: outcome, not a copy of a body that may weigh tens of kilobytes.
CONTENT_FIELDS = ("text", "html")
#: A record as JSON, times as text (one encoder for all: ``json.dumps`` with ``default``
#: builds a new one per call).
_encode = json.JSONEncoder(default=str).encode
#: ``HSET notifier:journal`` in RESP, the part every record's command starts with.
_HSET = b"*4\r\n$4\r\nHSET\r\n$%d\r\n%b\r\n" % (len(KEY), KEY.encode())


class JournalWriter:
    """The journal of one batch, written without waiting for Redis between messages.

    ``record()`` hands the HSET to the kernel (a ``send``, no round trip), so a batch does
    not stop for Redis after every message; ``close()`` reads all the replies. A worker
    killed after ``record()`` returned still has its command delivered (the kernel sends
    what was written before it closes the socket), so the guarantee is the same as waiting:
    at most the message in flight is repeated.
    """

    def __init__(self, *, content: bool = True):
        self.connection = None
        self.pending = 0
        self.content = content  # False: the rendered text and html are left out
        try:
            self.pool = redis_connection().connection_pool
            self.connection = self.pool.get_connection()
        except RedisError as error:
            logger.warning("journal unavailable for this batch: %s", error)

    def record(self, outcome: dict[str, Any]) -> None:
        if self.connection is None:
            return
        if not self.content:
            outcome = {k: v for k, v in outcome.items() if k not in CONTENT_FIELDS}
        field = str(outcome["id"]).encode()
        value = _encode(outcome).encode()
        try:  # the command written out once here (redis-py packs each argument anew)
            self.connection.send_packed_command(
                [b"%b$%d\r\n%b\r\n$%d\r\n%b\r\n" % (_HSET, len(field), field, len(value), value)],
                check_health=False,
            )
            self.pending += 1
        except RedisError as error:  # the batch goes on; at worst this message is repeated
            logger.warning("journal write failed for message %s: %s", outcome["id"], error)
            self._drop()

    def close(self) -> None:
        if self.connection is None:
            return
        try:
            for _ in range(self.pending):
                self.connection.read_response()
        except RedisError as error:
            logger.warning("journal replies could not be read: %s", error)
            self._drop()
            return
        self.pool.release(self.connection)
        self.connection = None

    def _drop(self) -> None:
        self.connection.disconnect()
        self.pool.release(self.connection)
        self.connection = None


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
