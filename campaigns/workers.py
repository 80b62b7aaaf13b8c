"""RQ worker and cron scheduler classes that outlive a Redis outage.

RQ 3.0 retries a lost connection only while a worker waits for a job
(``dequeue_job_and_maintain_ttl``). Anywhere else — the bookkeeping after a job, a heartbeat,
the suspension check, registry cleaning — a ``ConnectionError`` ends its loop ("found an
unhandled exception, quitting"), a ``TimeoutError`` too, and the process exits; RQ's cron
scheduler exits on the first failed enqueue. A Redis restart of a few seconds then leaves no
worker and no sweep until a person restarts them.

Here a worker whose loop ended without being asked to (no signal, not burst, no job or idle
limit) waits for Redis with exponential backoff and starts its loop again; the cron scheduler
waits and goes on. The database is the source of truth, so nothing is lost meanwhile: a job
whose result RQ could not record has already written its messages' state, and the sweep
re-enqueues whatever stayed ``queued``.

    python manage.py rqworker notifier --worker-class campaigns.workers.Worker
    python manage.py rqworker notifier --worker-class campaigns.workers.SimpleWorker
    python manage.py notifier_cron
"""

from __future__ import annotations

import gc
import signal
import time
from typing import Any

import redis.exceptions
import rq.worker
from django_rq.cron import DjangoCronScheduler
from rq.exceptions import StopRequested

from channels.handler import backends

#: What a Redis outage raises: refused or dropped connections, and reads that time out.
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

FIRST_WAIT = 1.0  # seconds before the first reconnection attempt; doubled up to MAX_WAIT
MAX_WAIT = 30.0


def _backoff(wait: float) -> float:
    return min(wait * 2, MAX_WAIT)


class ReconnectingWorkerMixin:
    """Runs RQ's work loop again, once Redis answers, whenever it ends on an error."""

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:
        # What is loaded by now (Django, the apps, their modules) lives as long as the
        # process: the cyclic collector need not walk it again after every few thousand
        # allocations of a batch (about a tenth of a campaign's CPU per message). A forking
        # worker's children share those pages, untouched, too.
        gc.freeze()
        try:
            return self._work(burst, *args, **kwargs)
        finally:  # the channels' connections kept open from batch to batch (channels.handler)
            backends.close_all()

    def _work(self, burst: bool, *args: Any, **kwargs: Any) -> bool:
        limited = kwargs.get("max_jobs") is not None or kwargs.get("max_idle_time") is not None
        wait, worked = FIRST_WAIT, False
        while True:
            started = time.monotonic()
            try:
                worked = super().work(burst, *args, **kwargs) or worked
            except REDIS_DOWN as error:  # its teardown could not record the worker's death
                self.log.error("Worker %s: lost Redis: %s", self.name, error)
            if burst or limited or self._shutdown_requested_date is not None:
                return worked
            if time.monotonic() - started > MAX_WAIT:  # it ran for a while: start afresh
                wait = FIRST_WAIT
            try:
                self._redis_await(wait)
            except StopRequested:
                return worked
            wait = _backoff(wait)

    def _redis_await(self, wait: float) -> None:
        """Sleep, then retry until Redis answers; make the worker's name free to register
        again. SIGINT or SIGTERM meanwhile raises StopRequested."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._stop_while_waiting)
        if self.pubsub_thread is not None:  # RQ's teardown may not have reached it
            self.pubsub_thread.stop()
        while True:
            self.log.warning(
                "Worker %s: the work loop ended; starting it again when Redis answers "
                "(next try in %.0f s)",
                self.name,
                wait,
            )
            time.sleep(wait)
            try:
                self.connection.ping()
                if self.connection.exists(self.key) and not self.connection.hexists(
                    self.key, "death"
                ):
                    self.register_death()  # else register_birth() refuses the name
            except REDIS_DOWN as error:
                self.log.error("Worker %s: Redis still unreachable: %s", self.name, error)
                wait = _backoff(wait)
                continue
            self.log.info("Worker %s: Redis answers again: starting the work loop", self.name)
            return

    def _stop_while_waiting(self, signum, frame):
        self._shutdown_requested_date = rq.worker.base.now()
        raise StopRequested()


class Worker(ReconnectingWorkerMixin, rq.worker.Worker):
    """RQ's forking worker (a process per job), outliving Redis outages."""


class SimpleWorker(ReconnectingWorkerMixin, rq.worker.SimpleWorker):
    """RQ's in-process worker (more jobs per second), outliving Redis outages."""


class ReconnectingCronScheduler(DjangoCronScheduler):
    """RQ's cron scheduler loop, except that a Redis outage makes it wait and go on instead
    of exiting. A job due meanwhile is enqueued once Redis answers."""

    def start(self) -> None:
        self.log.info("CronScheduler %s: starting...", self.name)
        self._install_signal_handlers()
        wait = FIRST_WAIT
        try:
            while True:
                try:
                    if not self._registered:
                        self.register_birth()
                        self._registered = True
                    if self.enqueue_jobs():
                        self.save()  # the jobs' enqueue times, for the dashboard
                    self.heartbeat()  # re-registers the scheduler if Redis lost its keys
                except REDIS_DOWN as error:
                    self.log.error(
                        "CronScheduler %s: Redis unreachable (%s); trying again in %.0f s",
                        self.name,
                        error,
                        wait,
                    )
                    time.sleep(wait)
                    wait = _backoff(wait)
                    continue
                wait = FIRST_WAIT
                sleep_time = self.calculate_sleep_interval()
                if sleep_time > 0:
                    time.sleep(sleep_time)
        except (KeyboardInterrupt, StopRequested):
            self.log.info("CronScheduler %s: stop requested", self.name)
        finally:
            try:
                self.register_death()
            except REDIS_DOWN as error:
                self.log.warning(
                    "CronScheduler %s: could not unregister (Redis unreachable: %s)",
                    self.name,
                    error,
                )
            self.log.info("CronScheduler %s: shutdown complete", self.name)

    _registered = False
