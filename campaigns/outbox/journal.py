"""A per-message record of send results, written to Redis right after each send.

A dispatch job writes its results to the database in one statement at the end of its batch
(so SQL queries do not grow with the batch). Between a send and that statement the result
lives here, so a worker that dies mid-batch repeats at most the one message in flight: the
sweep, reclaiming the batch, applies what the journal says was already sent.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterable
from typing import Any

from redis.exceptions import RedisError, ResponseError

from campaigns.connections import redis_connection, redis_run_packed
from campaigns.outbox.bulk import json_bytes

logger = logging.getLogger("notifier.journal")
KEY = "notifier:journal"
#: The rendered content of a result: journaled only for backends whose message row is what
#: the recipient reads (the inbox). Elsewhere a row recovered from the journal gets its
#: outcome, not a copy of a body that may weigh tens of kilobytes.
CONTENT_FIELDS = ("text", "html")
#: ``HSET notifier:journal`` in RESP, the part every record's command starts with.
_HSET = b"*4\r\n$4\r\nHSET\r\n$%d\r\n%b\r\n" % (len(KEY), KEY.encode())
#: The longest a record waits in the kernel, corked with the records after it, before it is
#: pushed to Redis (s). A channel slower than this pushes each record as it is written.
PUSH_INTERVAL = 0.005
_CORK = getattr(socket, "TCP_CORK", None)  # Linux


def _command(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words)


_REPLIES_OFF = _command(b"CLIENT", b"REPLY", b"OFF")
_REPLIES_ON = _command(b"CLIENT", b"REPLY", b"ON")


class JournalWriter:
    """The journal of one batch, written without waiting for Redis between messages.

    ``record()`` hands the HSET to the kernel (a ``send``, no round trip), so a batch does
    not stop for Redis after every message. A worker killed after ``record()`` returned
    still has its command delivered (the kernel sends what was written before it closes the
    socket), so the guarantee is the same as waiting: at most the message in flight is
    repeated.

    Redis is asked not to answer the records (``CLIENT REPLY OFF``), and on Linux the
    connection is corked (``TCP_CORK``): the records written within ``PUSH_INTERVAL`` of
    each other leave as one segment, which Redis reads and runs at once, instead of one
    segment, one wake-up and one reply per message (most of the journal's cost on a fast
    channel). Both belong together: a killed process's socket is closed with its corked
    records sent first only while nothing it was sent lies unread (an unread reply makes
    the kernel reset the connection and drop what is corked). Only a crash of the machine
    itself could lose the records of its last few milliseconds, as a Redis that syncs its log
    every second loses its last second. ``close()`` turns the replies on again and checks
    that the batch's last record is there (Redis answered none of them).
    """

    def __init__(self, *, content: bool = True):
        self.connection = None
        self.pending = 0  # records whose replies close() reads (where Redis answers them)
        self.last: bytes | None = None  # the field of the last record
        self.content = content  # False: the rendered text and html are left out
        self.quiet = False  # Redis answers no record
        self.corked: socket.socket | None = None
        self.pushed = 0.0
        try:
            self.pool = redis_connection().connection_pool
            self.connection = self.pool.get_connection()
            self.quiet = self._replies_off()
        except RedisError as error:
            logger.warning("journal unavailable for this batch: %s", error)
            if self.connection is not None:
                self._drop()
            return
        if self.quiet:
            self.corked = self._cork()

    def record(self, outcome: dict[str, Any]) -> None:
        if self.connection is None:
            return
        if not self.content:
            outcome = {k: v for k, v in outcome.items() if k not in CONTENT_FIELDS}
        field = str(outcome["id"]).encode()
        value = json_bytes(outcome, default=str)  # times in ISO 8601
        try:  # the command written out once here (redis-py packs each argument anew)
            self.connection.send_packed_command(
                [b"%b$%d\r\n%b\r\n$%d\r\n%b\r\n" % (_HSET, len(field), field, len(value), value)],
                check_health=False,
            )
            self.last = field
            if not self.quiet:
                self.pending += 1
            if self.corked is not None and (now := time.monotonic()) - self.pushed >= PUSH_INTERVAL:
                self._push(cork=True)
                self.pushed = now
        except (RedisError, OSError) as error:  # the batch goes on; at worst it is repeated
            logger.warning("journal write failed for message %s: %s", outcome["id"], error)
            self._drop()

    def close(self) -> None:
        if self.connection is None:
            return
        try:
            if self.corked is not None:  # the pool's connection goes back as it came
                self._push(cork=False)
            if self.quiet:
                self._replies_on()
            for _ in range(self.pending):
                self.connection.read_response()
        except (RedisError, OSError) as error:
            logger.warning("journal replies could not be read: %s", error)
            self._drop()
            return
        self.pool.release(self.connection)
        self.connection = None

    def _replies_off(self) -> bool:
        """Redis told to answer no record of this batch; False where it does not know
        ``CLIENT REPLY`` (a proxy, say: the records' replies are then read by close()).
        Which it is costs one round trip, the first time a connection is used."""
        known = getattr(self.connection, "notifier_replies_off", None)
        if known is None:
            # OFF answers nothing and ON answers OK: one reply, and that is an OK, only
            # where both are understood.
            self.connection.send_packed_command([_REPLIES_OFF + _REPLIES_ON], check_health=False)
            known = True
            for _ in range(2):
                try:
                    self.connection.read_response()
                    break
                except ResponseError:
                    known = False
            self.connection.notifier_replies_off = known
        if known:
            self.connection.send_packed_command([_REPLIES_OFF], check_health=False)
        return known

    def _replies_on(self) -> None:
        """Replies on again; and whether the last record is in (an error Redis had for the
        records, out of memory say, went unanswered)."""
        check = [_command(b"HEXISTS", KEY.encode(), self.last)] if self.last else []
        self.connection.send_packed_command([_REPLIES_ON, *check], check_health=False)
        self.connection.read_response()
        if not check:
            return
        try:
            kept, why = self.connection.read_response(), ""
        except ResponseError as error:  # the key is not a hash, say
            kept, why = False, f": {error}"
        if not kept:
            logger.warning(
                "journal: Redis did not keep this batch's records (the last, message %s, is "
                "missing%s); a worker lost before the batch's results are written repeats them",
                self.last.decode(),
                why,
            )

    def _cork(self) -> socket.socket | None:
        """The connection's TCP socket, corked; None where there is no cork (not Linux, a
        Unix socket), and records are then sent one by one."""
        sock = getattr(self.connection, "_sock", None)
        if _CORK is None or sock is None:
            return None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _CORK, 1)
        except OSError:
            return None
        self.pushed = time.monotonic()
        return sock

    def _push(self, *, cork: bool) -> None:
        """Send what is corked now (and cork again for the records to come)."""
        self.corked.setsockopt(socket.IPPROTO_TCP, _CORK, 0)
        if cork:
            self.corked.setsockopt(socket.IPPROTO_TCP, _CORK, 1)
        else:
            self.corked = None

    def _drop(self) -> None:
        self.corked = None
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
    """Forget the records of ``ids`` (their results are written): one HDEL, packed here
    (redis-py packs a command's arguments one by one, and a batch has hundreds)."""
    fields = [str(i).encode() for i in ids]
    if not fields:
        return
    try:
        redis_run_packed(_command(b"HDEL", KEY.encode(), *fields), 1)
    except RedisError as error:
        logger.warning("journal clear failed for %d message(s): %s", len(fields), error)
