"""The process's one Redis client, for RQ's queues, the send journal, the rate limiter, the
API token throttle and the campaign dry runs' progress.

A client per call would cost a TCP handshake each time; redis-py pools are thread-safe and
reset themselves after fork."""

from __future__ import annotations

from functools import cache

import django_rq
from redis import Redis

from campaigns.conf import app_settings


@cache
def redis_connection() -> Redis:
    return django_rq.get_connection(app_settings.QUEUE)
