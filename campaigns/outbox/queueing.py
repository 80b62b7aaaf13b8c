"""The one door to RQ: every job Notifier enqueues goes through here, after the transaction
that wrote its work commits.

A job carries only plain ids (ints, the same after a JSON round trip), never model instances.
If Redis cannot be reached, nothing is lost: the rows stay as they are (``queued`` messages,
pending campaign chunks) and the sweep enqueues them again once their lease has run out.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import django_rq
from django.db import transaction
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.defaults import DEFAULT_FAILURE_TTL, DEFAULT_RESULT_TTL
from rq.job import Job

from campaigns.conf import app_settings
from campaigns.connections import redis_connection

logger = logging.getLogger("notifier.queue")

DISPATCH_JOB = "campaigns.jobs.dispatch"
CHUNK_JOB = "campaigns.jobs.campaign_chunk"
DRY_RUN_JOB = "campaigns.jobs.campaign_dry_run"


def get_queue() -> Queue:
    return django_rq.get_queue(app_settings.QUEUE, connection=redis_connection())


def chunked(ids: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _enqueue(path: str, calls: list[tuple], *, label: str) -> int:
    """One job of ``path`` per argument tuple, in one round trip. Returns the number of jobs;
    0 when Redis cannot be reached (the sweep will enqueue the work again)."""
    if not calls:
        return 0
    try:
        queue = get_queue()
        jobs = [
            Queue.prepare_data(path, args=args, description=f"{label} {_describe(args)}")
            for args in calls
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


def _describe(args: tuple) -> str:
    if len(args) == 1 and isinstance(args[0], list):
        return f"{len(args[0])}"
    return ", ".join(map(str, args))


def dispatch_batches(ids_by_channel: Mapping[int, Iterable[int]]) -> list[list[int]]:
    """Batches of at most BATCH_SIZE ids, one channel per batch, each sorted."""
    size = app_settings.BATCH_SIZE
    return [
        [int(i) for i in chunk]
        for ids in ids_by_channel.values()
        for chunk in chunked(sorted(ids), size)
    ]


def dispatch_now(ids_by_channel: Mapping[int, Iterable[int]]) -> int:
    """Enqueue dispatch jobs for these message ids at once (the caller's rows are committed)."""
    return _enqueue(
        DISPATCH_JOB, [(batch,) for batch in dispatch_batches(ids_by_channel)], label="dispatch"
    )


def dispatch_after_commit(ids_by_channel: Mapping[int, Iterable[int]]) -> None:
    """Enqueue dispatch jobs for these message ids once the current transaction commits."""
    payload = {channel: list(ids) for channel, ids in ids_by_channel.items() if ids}
    if payload:
        transaction.on_commit(lambda: dispatch_now(payload))


def chunks_after_commit(chunk_ids: Iterable[int]) -> None:
    """Enqueue one fan-out job per campaign chunk once the current transaction commits."""
    calls = [(int(chunk_id),) for chunk_id in chunk_ids]
    if calls:
        transaction.on_commit(lambda: _enqueue(CHUNK_JOB, calls, label="campaign chunk"))


def dry_run_after_commit(campaign_id: int) -> None:
    """Enqueue the dry run of a large audience once the current transaction commits."""
    calls = [(int(campaign_id),)]
    transaction.on_commit(lambda: _enqueue(DRY_RUN_JOB, calls, label="campaign dry run"))


#: How far back the dashboard's throughput looks, in seconds.
THROUGHPUT_WINDOW = 300


@dataclass(frozen=True, slots=True)
class FailedJob:
    description: str
    failed_at: dt.datetime | None
    error: str  # the exception's last line


@dataclass(frozen=True, slots=True)
class QueueStats:
    reachable: bool
    queued: int = 0
    started: int = 0
    failed: int = 0
    workers: int = 0
    busy_workers: int = 0
    #: Jobs finished and failed in the last ``THROUGHPUT_WINDOW`` seconds.
    finished_recently: int = 0
    failed_recently: int = 0
    #: The newest failed jobs, newest first.
    last_failures: tuple[FailedJob, ...] = ()
    error: str = ""

    @property
    def per_minute(self) -> float:
        return round(self.finished_recently * 60 / THROUGHPUT_WINDOW, 1)


def _recent(registry, ttl: int, now: float) -> int:
    """Entries of an RQ registry added in the last THROUGHPUT_WINDOW seconds: RQ scores each
    with the time it was added plus the job's ttl (our jobs keep RQ's default ttls)."""
    return registry.connection.zcount(registry.key, now + ttl - THROUGHPUT_WINDOW, "+inf")


def queue_stats(*, failures: int = 5) -> QueueStats:
    """The queue's depth, running, finished and failed jobs, and workers, from RQ's own data
    (its registries and worker records): a few Redis reads, no database query."""
    try:
        queue = get_queue()
        now = time.time()
        workers = Worker.all(queue=queue)
        failed_registry = queue.failed_job_registry
        newest = failed_registry.get_job_ids(-failures, -1) if failures else []
        last = []
        for job in Job.fetch_many(list(reversed(newest)), connection=queue.connection):
            if job is None:
                continue
            result = job.latest_result()
            trace = ((result.exc_string if result else "") or "").strip().splitlines()
            last.append(
                FailedJob(
                    job.description or job.func_name, job.ended_at, trace[-1] if trace else ""
                )
            )
        return QueueStats(
            reachable=True,
            queued=queue.count,
            started=queue.started_job_registry.count,
            failed=failed_registry.count,
            workers=len(workers),
            busy_workers=sum(1 for w in workers if w.get_state() == "busy"),
            finished_recently=_recent(queue.finished_job_registry, DEFAULT_RESULT_TTL, now),
            failed_recently=_recent(failed_registry, DEFAULT_FAILURE_TTL, now),
            last_failures=tuple(last),
        )
    except RedisError as error:
        return QueueStats(reachable=False, error=str(error))
