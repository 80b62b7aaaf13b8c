"""The process's one Redis client, for RQ's queues, the send journal, the rate limiter, the
API token throttle and the campaign dry runs' progress.

A client per call would cost a TCP handshake each time; redis-py pools are thread-safe and
reset themselves after fork."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import django_rq
from redis import Redis
from redis.exceptions import RedisError

from campaigns.conf import app_settings


@cache
def redis_connection() -> Redis:
    return django_rq.get_connection(app_settings.QUEUE)


def redis_run(*commands: tuple) -> list:
    """Run ``commands`` (each a tuple such as ``("GET", key)``) in one round trip on a
    connection of the pool, and return their replies. For the hot path: redis-py's pipeline
    object does the same with several times the Python per call. A Redis error raises
    ``RedisError``, and the connection is dropped rather than given back half read."""
    return _run(lambda connection: connection.pack_commands(commands), len(commands))


def redis_run_packed(packed: bytes, count: int) -> list:
    """``redis_run`` for ``count`` commands its caller wrote in RESP itself (``packed``): one
    with hundreds of arguments, which redis-py would pack one by one."""
    return _run(lambda _connection: [packed], count)


def _run(pack: Callable[[Any], list[bytes]], count: int) -> list:
    pool = redis_connection().connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command(pack(connection))
        replies = [connection.read_response() for _ in range(count)]
    except BaseException:
        connection.disconnect()
        pool.release(connection)
        raise
    pool.release(connection)
    for reply in replies:
        if isinstance(reply, RedisError):
            raise reply
    return replies
