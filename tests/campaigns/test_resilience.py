"""Long-running processes survive outages of what they depend on: the sweep loop outlives a
dropped database connection, and the RQ worker and the cron scheduler outlive a Redis restart —
real processes, a real PostgreSQL connection killed from outside, a real redis-server stopped
and started again."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.db import connection
from django.utils import timezone

from campaigns.api import notify
from campaigns.conf import app_settings
from campaigns.models import Message
from tests import factories
from tests.conftest import free_port, output, worker_queues

pytestmark = pytest.mark.slow  # starts processes of its own

CONTEXT = {"order_id": "A-1"}


def wait_for(condition, *, timeout: float, processes=(), what: str) -> None:
    """Poll ``condition`` until it holds; fail with the processes' output if it never does or
    one of them exits."""
    deadline = time.monotonic() + timeout
    while not condition():
        for process in processes:
            assert process.poll() is None, f"{process.args[2]} exited:\n{output(process)}"
        assert time.monotonic() < deadline, f"{what} did not happen:\n" + "\n".join(
            output(p) for p in processes
        )
        time.sleep(0.1)


def statuses(messages) -> set[str]:
    ids = [m.pk for m in messages]
    return set(Message.objects.filter(pk__in=ids).values_list("status", flat=True))


def terminate_backends(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database() "
            "AND pid <> pg_backend_pid()",
            [application_name],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_sweep_loop_survives_a_dropped_database_connection(spawn, close_db_after):
    """The loop's connection is terminated by the server (as a failover or an operator's
    pg_terminate_backend does): it logs, reconnects and goes on sweeping."""
    channel = factories.memory_channel()
    factories.TemplateFactory(channel=channel, event__key="order-shipped")
    soon = timezone.now() + dt.timedelta(seconds=0.5)
    first = notify("order-shipped", {"email": "a@x.io"}, CONTEXT, scheduled_at=soon).messages
    loop = spawn(
        "process_notifications",
        "--loop",
        "--interval",
        "0.2",
        env_overrides={"PGAPPNAME": "notifier-sweep-loop"},
    )
    wait_for(lambda: statuses(first) == {"queued"}, timeout=60, processes=[loop], what="sweep")

    assert terminate_backends("notifier-sweep-loop") == 1

    later = notify(
        "order-shipped",
        [{"email": "b@x.io"}, {"email": "c@x.io"}],
        CONTEXT,
        scheduled_at=timezone.now() + dt.timedelta(seconds=0.5),
    ).messages
    assert statuses(later) == {"scheduled"}
    wait_for(
        lambda: statuses(later) == {"queued"},
        timeout=60,
        processes=[loop],
        what="the sweep after the connection was dropped",
    )
    log = output(loop)
    assert "sweep failed" in log, log
    # The log names the cause; psycopg words it by when the termination reached the
    # connection: as the server's notice, or as the socket closing under a query.
    assert "OperationalError" in log, log
    assert (
        "terminating connection due to administrator command" in log
        or "server closed the connection unexpectedly" in log
    ), log


class PrivateRedis:
    """A redis-server of the test's own on a free port (as scripts/run.sh starts one), which
    can be stopped and started again on the same port."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
                *("--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")),
            ],
        )
        deadline = time.monotonic() + 20
        while not self.answers():
            assert self.process.poll() is None, (self.directory / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            return redis.Redis.from_url(self.url, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


WORKER = (
    "rqworker",
    *worker_queues(),
    "default",
    "--worker-class",
    "campaigns.workers.SimpleWorker",
)
CRON = ("notifier_cron",)  # the worker and the scheduler as scripts/run.sh starts them


@pytest.mark.django_db(transaction=True)
def test_worker_and_scheduler_deliver_after_redis_restarts(
    email_channel, smtp, spawn, private_redis, close_db_after
):
    """Redis stops while the worker is sending (so RQ cannot record the job's result) and
    comes back a few seconds later on the same port, empty, as after a crash without
    persistence: the worker and the cron scheduler wait for it, and a message notified
    afterwards is swept, dispatched and reaches the SMTP server."""
    assert WORKER[1] == app_settings.QUEUE
    factories.TemplateFactory(channel=email_channel, event__key="order-shipped")
    env = {"REDIS_URL": private_redis.url, "NOTIFIER_SWEEP_INTERVAL": "1"}
    processes = [spawn(*WORKER, env_overrides=env), spawn(*CRON, env_overrides=env)]

    def delivered(messages) -> bool:
        ids = " ".join(smtp.message_ids)
        return all(f"<{m.uuid}@" in ids for m in messages)

    def due_soon() -> dt.datetime:  # scheduled: the sweep (a cron job on the worker) sends it
        return timezone.now() + dt.timedelta(seconds=0.5)

    smtp.delay = 3  # the SMTP server takes its time, so Redis goes away mid-job
    before = notify("order-shipped", {"email": "a@x.io"}, CONTEXT, scheduled_at=due_soon())
    wait_for(
        lambda: statuses(before.messages) == {"sending"},
        timeout=60,
        processes=processes,
        what="the worker's claim",
    )
    private_redis.stop()
    wait_for(lambda: delivered(before.messages), timeout=30, processes=processes, what="send")
    smtp.delay = 0
    time.sleep(2)  # Redis stays away a little longer: the worker's bookkeeping fails
    private_redis.start()

    after = notify("order-shipped", {"email": "b@x.io"}, CONTEXT, scheduled_at=due_soon())
    wait_for(
        lambda: delivered(after.messages),
        timeout=90,
        processes=processes,
        what="delivery after Redis restarted",
    )
    assert statuses(before.messages + after.messages) == {"sent"}
    assert smtp.count == 2
    assert all(process.poll() is None for process in processes)
