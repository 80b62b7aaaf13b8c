"""The one door to RQ: every job Notifier enqueues goes through here, after the transaction
that wrote its work commits.

Two lanes, each an RQ queue: ``transactional`` (``QUEUE``: what ``notify()`` writes, and the
sweep) and ``bulk`` (``BULK_QUEUE``: campaign chunks, their messages, dry runs). Workers take
jobs from the transactional queue first (``rqworker notifier notifier-bulk``), and a bulk job
stops after ``DRAIN_BUDGET`` seconds and enqueues its rest again, so a campaign cannot keep a
password reset waiting.

Messages due now are not a job each: their ids go onto the lane's ready list in Redis, and
a *drain* job per lane (a flag key says one is queued or running) takes them off in batches
of ``BATCH_SIZE`` and dispatches them. A thousand calls of ``notify()`` in a second become a
few batches, and a lone call on idle workers is sent as soon as a worker takes its drain job.
While more than a batch waits, the drain job enqueues helpers, up to ``DRAIN_JOBS`` drains
in all (each holds a flag slot of its own), so every worker sends a large ``notify()``.

A job carries only plain values (ids, a lane name), never model instances. If Redis cannot be
reached, nothing is lost: the rows stay ``queued`` under their queue lease, and the sweep
enqueues them again once it has run out.
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
from campaigns.connections import redis_connection, redis_run

logger = logging.getLogger("notifier.queue")

TRANSACTIONAL = "transactional"
BULK = "bulk"
LANES = (TRANSACTIONAL, BULK)

DISPATCH_JOB = "campaigns.jobs.dispatch"
DRAIN_JOB = "campaigns.jobs.drain"
CHUNK_JOB = "campaigns.jobs.campaign_chunk"
DRY_RUN_JOB = "campaigns.jobs.campaign_dry_run"
WEBHOOKS_JOB = "campaigns.jobs.webhooks_deliver"

#: Seconds a drain flag lives without being renewed: a drain job killed mid-run leaves its
#: lane without a drain for at most this long (the sweep also enqueues what stays queued).
DRAIN_LEASE = 30


def queue_name(lane: str) -> str:
    return app_settings.BULK_QUEUE if lane == BULK else app_settings.QUEUE


def get_queue(lane: str = TRANSACTIONAL) -> Queue:
    return django_rq.get_queue(queue_name(lane), connection=redis_connection())


def chunked(ids: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _enqueue(path: str, calls: list[tuple], *, label: str, lane: str) -> int:
    """One job of ``path`` per argument tuple, in one round trip. Returns the number of jobs;
    0 when Redis cannot be reached (the sweep will enqueue the work again)."""
    if not calls:
        return 0
    try:
        queue = get_queue(lane)
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


# --- messages due now: the ready lists and their drain jobs ------------------------------------


def _ready_key(lane: str) -> str:
    return f"notifier:ready:{lane}"


def _drain_key(lane: str, slot: int = 1) -> str:
    """The flag of a lane's drain job; slots 2… are its helpers' (``DRAIN_JOBS``)."""
    return f"notifier:drain:{lane}" if slot == 1 else f"notifier:drain:{lane}:{slot}"


def dispatch_now(ids_by_channel: Mapping[int, Iterable[int]], *, lane: str = TRANSACTIONAL) -> int:
    """Put these message ids (committed rows) on the lane's ready list, and enqueue the
    lane's drain job unless one is queued or running. Returns how many ids were handed over;
    0 when Redis cannot be reached (the sweep will)."""
    ids = [int(i) for channel_ids in ids_by_channel.values() for i in channel_ids]
    if not ids:
        return 0
    try:
        _, drain_needed = redis_run(
            ("RPUSH", _ready_key(lane), *ids),
            ("SET", _drain_key(lane), 1, "NX", "EX", DRAIN_LEASE),
        )
    except RedisError as error:
        logger.warning(
            "could not hand %d message(s) to workers, the sweep will: %s", len(ids), error
        )
        return 0
    if drain_needed:
        _enqueue(DRAIN_JOB, [(lane,)], label="drain", lane=lane)
    return len(ids)


def dispatch_after_commit(
    ids_by_channel: Mapping[int, Iterable[int]], *, lane: str = TRANSACTIONAL
) -> None:
    """``dispatch_now`` once the current transaction commits (at once outside of one)."""
    payload = {channel: list(ids) for channel, ids in ids_by_channel.items() if ids}
    if payload:
        transaction.on_commit(lambda: dispatch_now(payload, lane=lane))


def ready_take(lane: str, count: int, *, slot: int = 1) -> list[int]:
    """Take up to ``count`` ids off the lane's ready list (a drain job, holding flag
    ``slot``), and renew its flag while there is work. When more than another batch is
    left, a helper drain job is enqueued in the first free slot up to ``DRAIN_JOBS``."""
    with redis_connection().pipeline(transaction=False) as pipe:
        pipe.lpop(_ready_key(lane), count)
        pipe.set(_drain_key(lane, slot), 1, ex=DRAIN_LEASE)
        pipe.llen(_ready_key(lane))
        taken, _, left = pipe.execute()
    if left >= count:
        _helper_start(lane)
    return [int(i) for i in taken or ()]


def _helper_start(lane: str) -> None:
    """Enqueue a helper drain job in the lane's first free flag slot, if there is one (one
    helper per call)."""
    connection = redis_connection()
    for slot in range(2, app_settings.DRAIN_JOBS + 1):
        if connection.set(_drain_key(lane, slot), 1, nx=True, ex=DRAIN_LEASE):
            _enqueue(DRAIN_JOB, [(lane, slot)], label="drain", lane=lane)
            return


def drain_release(lane: str, *, slot: int = 1) -> bool:
    """The drain job (flag ``slot``) found the list empty: drop its flag. True when ids came
    in meanwhile and this job took its flag again (it goes on); False when it stops."""
    connection = redis_connection()
    connection.delete(_drain_key(lane, slot))
    if not connection.llen(_ready_key(lane)):
        return False
    return bool(connection.set(_drain_key(lane, slot), 1, nx=True, ex=DRAIN_LEASE))


def drains_ensure(*, force: bool = False) -> int:
    """For the sweep: enqueue the drain job of each lane whose ready list holds ids while no
    drain job is queued or running (its job was lost with a killed worker, or emptied from
    the queue). With ``force`` (the sweep just took back a dead worker's leases, so that
    worker's flag may still stand) a drain job is enqueued even under a flag: a second drain
    job running beside a live one only shares its work. Returns how many it enqueued."""
    started = 0
    for lane in LANES:
        flag = ("SET", _drain_key(lane), 1, "EX", DRAIN_LEASE, *(() if force else ("NX",)))
        try:
            pending, taken = redis_run(("LLEN", _ready_key(lane)), flag)
            if taken and not pending:
                redis_run(("DEL", _drain_key(lane)))
                continue
        except RedisError as error:
            logger.warning("could not look at the %s lane: %s", lane, error)
            continue
        if taken:
            started += _enqueue(DRAIN_JOB, [(lane,)], label="drain", lane=lane)
    return started


def ready_clear() -> None:
    """Forget the ready lists and drain flags (the rows stay ``queued``: the sweep hands them
    out again). For the benchmark and tests that empty the queues."""
    slots = range(1, app_settings.DRAIN_JOBS + 1)
    redis_run(*[("DEL", _ready_key(lane), *(_drain_key(lane, s) for s in slots)) for lane in LANES])


def drain_continue_later(lane: str, *, slot: int = 1) -> None:
    """A drain job out of time hands its lane to a new drain job at the end of the queue (the
    flag stays: it is that job's now)."""
    _enqueue(DRAIN_JOB, [(lane, slot) if slot != 1 else (lane,)], label="drain", lane=lane)


def chunks_after_commit(chunk_ids: Iterable[int]) -> None:
    """Enqueue one fan-out job per campaign chunk once the current transaction commits."""
    calls = [(int(chunk_id),) for chunk_id in chunk_ids]
    if calls:
        transaction.on_commit(lambda: _enqueue(CHUNK_JOB, calls, label="campaign chunk", lane=BULK))


def dry_run_after_commit(campaign_id: int) -> None:
    """Enqueue the dry run of a large audience once the current transaction commits."""
    calls = [(int(campaign_id),)]
    transaction.on_commit(lambda: _enqueue(DRY_RUN_JOB, calls, label="campaign dry run", lane=BULK))


def webhooks_after_commit(delivery_ids: Iterable[int]) -> None:
    """Enqueue the sending of these status webhook deliveries, in jobs of ``BATCH_SIZE``, on
    the bulk lane (a password reset never waits behind them), once the current transaction
    commits. If Redis cannot be reached, the sweep hands them out when they are due."""
    calls = [(chunk,) for chunk in chunked([int(i) for i in delivery_ids], app_settings.BATCH_SIZE)]
    if calls:
        transaction.on_commit(
            lambda: _enqueue(WEBHOOKS_JOB, calls, label="status webhooks", lane=BULK)
        )


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
    ready: int = 0  # messages on the ready lists, waiting for a drain job
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
    """Both lanes' depth, running, finished and failed jobs, workers and ready messages, from
    RQ's own data (its registries and worker records) and the ready lists: a few Redis reads,
    no database query."""
    try:
        queues = [get_queue(lane) for lane in LANES]
        connection = redis_connection()
        now = time.time()
        workers = {w.name: w for q in queues for w in Worker.all(queue=q)}
        jobs = []
        for queue in queues:
            ids = queue.failed_job_registry.get_job_ids(-failures, -1) if failures else []
            jobs += [job for job in Job.fetch_many(ids, connection=queue.connection) if job]
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        jobs.sort(key=lambda job: job.ended_at or epoch, reverse=True)
        last = []
        for job in jobs[:failures]:
            result = job.latest_result()
            trace = ((result.exc_string if result else "") or "").strip().splitlines()
            last.append(
                FailedJob(
                    job.description or job.func_name, job.ended_at, trace[-1] if trace else ""
                )
            )
        return QueueStats(
            reachable=True,
            queued=sum(q.count for q in queues),
            started=sum(q.started_job_registry.count for q in queues),
            failed=sum(q.failed_job_registry.count for q in queues),
            workers=len(workers),
            busy_workers=sum(1 for w in workers.values() if w.get_state() == "busy"),
            ready=sum(connection.llen(_ready_key(lane)) for lane in LANES),
            finished_recently=sum(
                _recent(q.finished_job_registry, DEFAULT_RESULT_TTL, now) for q in queues
            ),
            failed_recently=sum(
                _recent(q.failed_job_registry, DEFAULT_FAILURE_TTL, now) for q in queues
            ),
            last_failures=tuple(last),
        )
    except RedisError as error:
        return QueueStats(reachable=False, error=str(error))
