"""The one place that hands work to RQ.

Work is queued only after the transaction that wrote it commits, and a job carries only a
list of message ids (plain ints, the same after a JSON round trip), never model instances.
If Redis cannot be reached, nothing is lost: the rows stay ``queued`` and the sweep enqueues
them again once their queue lease has run out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from functools import cache

import django_rq
from django.db import transaction
from redis.exceptions import RedisError
from rq import Queue

from campaigns.conf import app_settings

logger = logging.getLogger("notifier.queue")

DISPATCH_JOB = "campaigns.jobs.dispatch"


@cache
def redis_connection():
    """One Redis client (and connection pool) per process for the queue, the send journal and
    the rate limiter: a client per call would cost a TCP handshake each time. redis-py pools
    are thread-safe and reset themselves after fork."""
    return django_rq.get_connection(app_settings.QUEUE)


def get_queue() -> Queue:
    return django_rq.get_queue(app_settings.QUEUE, connection=redis_connection())


def chunked(ids: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def enqueue_dispatch(ids_by_channel: Mapping[int, list[int]]) -> int:
    """Enqueue dispatch jobs of at most BATCH_SIZE ids, one channel per job, in one round trip.
    Returns the number of jobs; 0 when Redis cannot be reached (the sweep will retry)."""
    size = app_settings.BATCH_SIZE
    batches = [
        [int(i) for i in chunk]
        for ids in ids_by_channel.values()
        for chunk in chunked(sorted(ids), size)
    ]
    if not batches:
        return 0
    try:
        queue = get_queue()
        jobs = [
            Queue.prepare_data(DISPATCH_JOB, args=(batch,), description=f"dispatch {len(batch)}")
            for batch in batches
        ]
        with queue.connection.pipeline() as pipe:
            queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()
    except RedisError as error:
        logger.warning(
            "could not enqueue %d dispatch job(s), the sweep will: %s", len(batches), error
        )
        return 0
    return len(batches)


def enqueue_job(path: str, calls: list[tuple], *, label: str) -> int:
    """Enqueue one job of ``path`` per argument tuple in ``calls``, in one round trip.
    Returns the number of jobs; 0 when Redis cannot be reached (the sweep will retry)."""
    if not calls:
        return 0
    try:
        queue = get_queue()
        jobs = [
            Queue.prepare_data(path, args=args, description=f"{label} {args}") for args in calls
        ]
        with queue.connection.pipeline() as pipe:
            queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()
    except RedisError as error:
        logger.warning(
            "could not enqueue %d %s job(s), the sweep will: %s", len(calls), label, error
        )
        return 0
    return len(calls)


def enqueue_dispatch_on_commit(ids_by_channel: Mapping[int, list[int]]) -> None:
    if any(ids_by_channel.values()):
        payload = {channel: list(ids) for channel, ids in ids_by_channel.items()}
        transaction.on_commit(lambda: enqueue_dispatch(payload))
