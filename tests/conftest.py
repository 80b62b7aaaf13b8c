"""Shared fixtures: real PostgreSQL (pytest-django), real Redis (a db index of the suite's
own, emptied around each test), a real SMTP server (aiosmtpd) and real RQ workers."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import django_rq
import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection
from rq import SimpleWorker

from campaigns.bench.smtp_sink import PipeliningOffer
from campaigns.conf import app_settings
from campaigns.domain.rendering import compiled_templates
from campaigns.outbox.catalog import catalog_clear
from campaigns.outbox.queueing import LANES, get_queue, queue_name
from channels.backends import locmem
from channels.handler import backends
from tests import factories

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    """A test that starts processes of its own (the ``spawn`` fixture) is marked ``slow``, so
    ``-m "not slow"`` leaves out exactly those."""
    unmarked = [
        item.nodeid
        for item in items
        if "spawn" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"mark these tests slow (they spawn processes): {unmarked}")


def pytest_configure(config):
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise pytest.UsageError(
            "The suite runs against PostgreSQL: set DATABASE_URL=postgres://… (see README)."
        )


@pytest.fixture(scope="session")
def redis_connection():
    connection_ = django_rq.get_connection(app_settings.QUEUE)
    connection_.ping()
    yield connection_
    connection_.flushdb()


@pytest.fixture(autouse=True)
def _clean_state(redis_connection):
    redis_connection.flushdb()
    locmem.outbox.clear()
    compiled_templates.clear()
    catalog_clear()
    yield
    backends.close_all()  # the channels' connections a test's dispatches kept open
    redis_connection.flushdb()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- SMTP -------------------------------------------------------------------------------------


MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>]+>)", re.IGNORECASE | re.MULTILINE)


@dataclass
class SMTPSink(PipeliningOffer):
    """What the SMTP server received, and answers it should give instead of accepting.

    Mails are kept raw and parsed on access, so the server thread stays cheap under load."""

    raw: list[bytes] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # consumed one per DATA, then 250
    always: str | None = None  # e.g. "550 5.1.1 mailbox unavailable" for every DATA
    delay: float = 0.0
    pipelining: bool = False  # offer PIPELINING (RFC 2920), as production servers do
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            if self.always:
                return self.always
            if self.replies:
                return self.replies.pop(0)
            self.raw.append(envelope.original_content or envelope.content)
        return "250 2.0.0 OK queued"

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        with self.lock:
            raw = list(self.raw)
        return [email.message_from_bytes(r, policy=email.policy.default) for r in raw]

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.raw)

    @property
    def message_ids(self) -> list[str]:
        with self.lock:
            raw = list(self.raw)
        return [MESSAGE_ID.search(r.split(b"\r\n\r\n", 1)[0]).group(1).decode() for r in raw]


@pytest.fixture
def smtp_server() -> Iterator[tuple[SMTPSink, int]]:
    sink = SMTPSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture
def smtp(smtp_server):
    return smtp_server[0]


@pytest.fixture
def id_sink(tmp_path) -> Iterator[tuple[int, Callable[[], list[str]]]]:
    """An SMTP server in a process of its own (tests/smtp_sink.py, for load tests) that
    appends each Message-ID it accepts to a file: its port, and a function that reads the
    ids received so far."""
    port, received = free_port(), tmp_path / "message-ids.txt"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "smtp_sink.py"), str(port), str(received)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready"

    def ids() -> list[str]:
        return received.read_text().split() if received.exists() else []

    yield port, ids
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def email_channel(db, smtp_server):
    """The email channel pointed at the test's SMTP server."""
    _, port = smtp_server
    return factories.email_channel(port=port)


# --- workers ----------------------------------------------------------------------------------


@pytest.fixture
def run_worker(redis_connection, django_capture_on_commit_callbacks):
    """Run a real RQ worker in burst mode (in this process) until the queue is empty.

    In a test that is not transactional nothing commits, so what the jobs enqueue after commit
    (a chunk's dispatch jobs) is run by ``django_capture_on_commit_callbacks(execute=True)``,
    and the worker goes on until no job is left and none was enqueued."""

    def run() -> int:
        """Returns how many jobs finished successfully."""
        queues = [get_queue(lane) for lane in LANES]  # as the README's worker: both lanes
        before = sum(q.finished_job_registry.count for q in queues)
        while True:
            with django_capture_on_commit_callbacks(execute=True) as callbacks:
                worker = SimpleWorker(queues, connection=redis_connection)
                worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
            if not callbacks:
                return sum(q.finished_job_registry.count for q in queues) - before

    return run


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``with committed(): …`` runs what the block registers to run after commit (enqueueing
    its jobs) as it ends, for tests that are not transactional: their transaction never
    commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def worker_queues() -> list[str]:
    """The queues a worker listens on, as ``make run`` starts it: the transactional lane
    first, then the bulk lane."""
    return [queue_name(lane) for lane in LANES]


def subprocess_env() -> dict[str, str]:
    """Environment for worker processes: the test database and Redis of this run."""
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="notifier_site.settings",
        DATABASE_URL=(
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        ),
        REDIS_URL=settings.REDIS_URL,
        SECRET_KEY="tests-only-secret-key",
        PYTHONUNBUFFERED="1",
    )
    return env


def output(process: subprocess.Popen) -> str:
    """What a spawned process printed so far (kept in a file: a pipe nobody reads would
    fill up and block the process)."""
    process.log.seek(0)
    return process.log.read().decode(errors="replace")


@pytest.fixture
def spawn(tmp_path):
    """Start ``manage.py`` subprocesses against the test database; all are stopped at the end."""
    processes: list[subprocess.Popen] = []

    def start(*args: str, env_overrides: dict | None = None, **kwargs) -> subprocess.Popen:
        log = open(tmp_path / f"process-{len(processes)}.log", "w+b")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=subprocess_env() | (env_overrides or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
            **kwargs,
        )
        process.log = log
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        process.log.close()


@pytest.fixture
def close_db_after():
    """Subprocesses need the database; drop this process's idle connection first."""
    yield
    connection.close()
