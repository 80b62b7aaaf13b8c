"""What every scenario shares: figures and how they print, the run's options, worker and
helper processes, the benchmark's own rows (every one named ``bench-…``) and their cleanup."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from rq import Worker, suspension

from campaigns.models import (
    Audience,
    Campaign,
    Contact,
    Event,
    Message,
    MessageAttempt,
    MessageRelatedObject,
    Template,
)
from channels.models import ChannelConfig

from . import adapter

#: Every row the benchmark writes carries this prefix in its key or name; nothing else is
#: ever deleted.
PREFIX = "bench-"
#: Redis keys the benchmark's jobs, workers and sends create (RQ's, the send journal's, the
#: rate limiter's): those that did not exist when the run began are deleted at its end.
REDIS_PATTERNS = ("rq:*", "notifier:*")
#: The floor's scratch tables (see ``floor``).
SCRATCH_TABLES = ("bench_floor_message", "bench_floor_attempt")


class BenchError(Exception):
    """A scenario could not measure (a worker died, a wait timed out …)."""


class Skip(Exception):
    """A scenario cannot run here (a tool is missing); the reason is printed."""


# --- figures -------------------------------------------------------------------------------


def number(value: float) -> str:
    """A figure's value in a few significant digits, one token (no spaces, no commas)."""
    if value is None or math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    size = abs(value)
    if size >= 100 or (value == int(value) and size >= 1):
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


@dataclass(slots=True)
class Figure:
    """One measured figure. ``sense`` says what its target is: ``max`` (at most), ``min`` (at
    least), ``ref`` (the issue's "before" measurement, to compare machines and runs) or
    ``info`` (no target). The ratio is always value / target."""

    scenario: str
    name: str
    value: float
    unit: str
    label: str
    target: float | None = None
    sense: str = "info"

    @property
    def ratio(self) -> float | None:
        if self.target is None or self.sense == "info":
            return None
        if self.target == 0:
            return math.inf if self.value else 1.0
        return self.value / self.target

    @property
    def verdict(self) -> str:
        if self.sense == "max":
            return "ok" if self.value <= self.target else "MISS"
        if self.sense == "min":
            return "ok" if self.value >= self.target else "MISS"
        return self.sense

    @property
    def target_text(self) -> str:
        if self.target is None or self.sense == "info":
            return "-"
        prefix = {"max": "<=", "min": ">=", "ref": "ref="}[self.sense]
        return f"{prefix}{number(self.target)}"

    @property
    def ratio_text(self) -> str:
        ratio = self.ratio
        return "-" if ratio is None else f"{ratio:.2f}"

    def columns(self) -> str:
        """value, unit, target, ratio, verdict"""
        return (
            f"{number(self.value):>9} {self.unit:<8} {self.target_text:<12} "
            f"{self.ratio_text:>6}  {self.verdict}"
        )

    def line(self) -> str:
        return f"{self.scenario:<9} {self.name:<26} {self.columns()}"


# --- options -------------------------------------------------------------------------------


@dataclass(slots=True)
class Options:
    """Sizes of a run. ``QUICK`` runs every scenario in seconds (the test uses it)."""

    recipients: int = 100_000  # floor, priority and campaign
    workers: int = 2
    rounds: int = 1
    calls: int = 300  # trigger: notify() calls measured per kind of recipient
    fanout: int = 10_000  # trigger: recipients of the one fan-out call
    dispatch: int = 20_000  # delivery: messages dispatched in-process
    batches: int = 100  # delivery: one-message batches dispatched in-process
    deliveries: int = 1_000  # delivery: one-recipient calls sent by the workers
    latency_samples: int = 50  # delivery: single calls on idle workers
    trigger_interval: float = 0.2  # priority: seconds between transactional triggers
    emails: int = 20_000  # email: messages to the SMTP sink, raw and end to end
    builds: int = 2_000  # email: messages built to time one
    import_rows: int = 10_000  # import: rows of the CSV file
    sqlite: bool = True  # trigger: also trigger + send on SQLite in memory
    timeout: float = 1800.0  # give up on any one wait after this many seconds
    quick: bool = False

    @classmethod
    def build(cls, *, quick: bool, **given: Any) -> Options:
        options = QUICK if quick else cls()
        known = {f.name for f in fields(cls)}
        return replace(options, **{k: v for k, v in given.items() if k in known and v is not None})


QUICK = Options(
    recipients=1_000,
    calls=20,
    fanout=500,
    dispatch=400,
    batches=10,
    deliveries=40,
    latency_samples=5,
    emails=200,
    builds=200,
    import_rows=100,
    timeout=120.0,
    quick=True,
)


# --- small helpers -------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (0.5, 0.99) with linear interpolation between ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    return percentile(values, 0.5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory of a live process (Linux's VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    check: Callable[[], None] | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something true; ``check`` raises when waiting is
    pointless (a worker died)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def committed(call: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``call`` (a ``notify()``) in a transaction of the caller's, as a view would, and
    return its result and the moment that transaction committed (``time.time()``): the start
    of a message's way to its recipient."""
    stamps: list[float] = []
    with transaction.atomic():
        # Registered before notify()'s own after-commit work, so it runs first.
        transaction.on_commit(lambda: stamps.append(time.time()))
        result = call()
    return result, stamps[0]


# --- the benchmark's rows ------------------------------------------------------------------


def null_channel(key: str = f"{PREFIX}null") -> ChannelConfig:
    channel, _ = ChannelConfig.objects.get_or_create(
        key=key, defaults={"name": "Benchmark (null)", "backend": adapter.NULL_BACKEND}
    )
    return channel


#: A typical transactional notification: subject, text and HTML with variables and the
#: recipient's name.
ORDER_TEMPLATE = {
    "subject": "Your order {{ order_id }} has shipped",
    "text_body": (
        "Hello {{ recipient.name }},\n\nyour order {{ order_id }} ({{ total }} EUR) is on its "
        "way. Track it at {{ tracking_url }}.\n\nThank you for shopping with us."
    ),
    "html_body": (
        "<p>Hello {{ recipient.name }},</p><p>your order <b>{{ order_id }}</b> "
        '({{ total }} EUR) is on its way. <a href="{{ tracking_url }}">Track it</a>.</p>'
        "<p>Thank you for shopping with us.</p>"
    ),
}
ORDER_VARIABLES = [
    {"name": "order_id", "label": "Order", "sample": "A-1001"},
    {"name": "total", "label": "Total", "sample": "19.90"},
    {"name": "tracking_url", "label": "Tracking link", "sample": "https://example.com/t/1"},
]
ORDER_CONTEXT = {
    "order_id": "A-1001",
    "total": "19.90",
    "tracking_url": "https://shop.example.com/track/A-1001",
}


def event_with_template(
    key: str,
    channel: ChannelConfig,
    *,
    variables: list[dict[str, Any]] | None = None,
    mandatory: bool = False,
    **template: str,
) -> Event:
    """An event (``bench-…``) with one English template on ``channel``."""
    event = Event.objects.create(
        key=key,
        name=f"Benchmark {key}",
        variables=ORDER_VARIABLES if variables is None else variables,
        mandatory=mandatory,
    )
    adapter.template_publish(
        Template.objects.create(
            event=event, channel=channel, language="en", **(template or ORDER_TEMPLATE)
        )
    )
    return event


def bench_user(username: str = f"{PREFIX}user", **extra: Any):
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is None:
        user = user_model.objects.create_user(
            username=username,
            email=f"{username}@bench.example",
            first_name="Bench",
            last_name="Reader",
            **extra,
        )
    return user


def contacts_write(audience: Audience, n: int) -> None:
    """A contact list of ``n``; through COPY on PostgreSQL (the set-up is not measured)."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        columns = "audience_id, email, phone, name, language, tz, data, created_at"
        with connection.cursor() as cursor:
            sql = f"COPY {Contact._meta.db_table} ({columns}) FROM STDIN"
            with cursor.copy(sql) as copy:
                for i in range(n):
                    copy.write_row(
                        (
                            audience.pk,
                            f"b{i}@bench.example",
                            "",
                            f"Reader {i}",
                            "en",
                            "",
                            '{"plan": "pro"}',
                            now,
                        )
                    )
        return
    Contact.objects.bulk_create(
        [
            Contact(
                audience=audience,
                email=f"b{i}@bench.example",
                name=f"Reader {i}",
                language="en",
                data={"plan": "pro"},
            )
            for i in range(n)
        ],
        batch_size=5000,
    )


CAMPAIGN_TEMPLATE = {
    "subject": "{{ headline }}",
    "text_body": "Hello {{ recipient.name }}, {{ headline }}. Your plan: {{ recipient.plan }}",
}


def campaign_prepare(key: str, recipients: int, channel: ChannelConfig) -> Campaign:
    """A draft campaign (``key``) to ``recipients`` imported contacts on ``channel``."""
    event = event_with_template(
        key,
        channel,
        variables=[{"name": "headline", "label": "Headline", "sample": "News"}],
        **CAMPAIGN_TEMPLATE,
    )
    audience = Audience.objects.create(name=key, kind="contacts")
    contacts_write(audience, recipients)
    campaign = Campaign.objects.create(
        name=key, event=event, audience=audience, context={"headline": "Benchmark"}
    )
    campaign.channels.set([channel])
    return campaign


def foreign_messages() -> int:
    """Messages in this database that are not the benchmark's."""
    return Message.objects.exclude(event__key__startswith=PREFIX).count()


def rows_delete() -> None:
    """Delete every row the benchmark wrote (and nothing else). Messages go with plain
    DELETEs: the ORM would load each of a campaign's 100,000 rows first."""
    quote = connection.ops.quote_name
    message_table = quote(Message._meta.db_table)
    events = f"SELECT id FROM {quote(Event._meta.db_table)} WHERE {quote('key')} LIKE %s"  # noqa: S608
    mine = f"SELECT id FROM {message_table} WHERE event_id IN ({events})"  # noqa: S608
    pattern = f"{PREFIX}%"
    with transaction.atomic(), connection.cursor() as cursor:
        for child in (MessageAttempt, MessageRelatedObject):
            cursor.execute(
                f"DELETE FROM {quote(child._meta.db_table)} WHERE message_id IN ({mine})",  # noqa: S608
                [pattern],
            )
        cursor.execute(
            f"DELETE FROM {message_table} WHERE event_id IN ({events})",  # noqa: S608
            [pattern],
        )
        Campaign.objects.filter(event__key__startswith=PREFIX).delete()
        Audience.objects.filter(name__startswith=PREFIX).delete()
        Event.objects.filter(key__startswith=PREFIX).delete()
        ChannelConfig.objects.filter(key__startswith=PREFIX).delete()
        get_user_model().objects.filter(username__startswith=PREFIX).delete()
    _vacuum(Message, Contact)


def _vacuum(*models_: type) -> None:
    """After the deletes, as autovacuum does in a running system (a round's 100,000 deleted
    rows would otherwise slow every index scan of the next scenario, and only Notifier's
    side of a comparison: the floor and raw smtplib read no table of Notifier's)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models_)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {tables}")


def scratch_drop() -> None:
    with connection.cursor() as cursor:
        tables = ", ".join(connection.ops.quote_name(name) for name in SCRATCH_TABLES)
        cursor.execute(f"DROP TABLE IF EXISTS {tables}")


# --- the run -------------------------------------------------------------------------------


class Workers:
    """``n`` worker processes started as the README's run command starts them."""

    def __init__(self, bench: Bench, n: int, *, held: bool = False):
        self.bench = bench
        self.held = held
        if held:  # they start but take no job until release()
            suspension.suspend(adapter.redis(), ttl=int(bench.options.timeout))
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        self.processes = [
            bench.spawn([sys.executable, manage, *adapter.worker_arguments()], name=f"worker{i}")
            for i in range(1, n + 1)
        ]
        self.peaks: dict[int, float] = {}

    def check(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise BenchError(
                    f"a worker exited with {process.returncode}:\n{self.bench.log_tail(process)}"
                )

    def sample(self) -> None:
        """Note each worker's peak memory so far (read while it lives)."""
        for process in self.processes:
            peak = peak_rss_mb(process.pid)
            if peak:
                self.peaks[process.pid] = max(self.peaks.get(process.pid, 0.0), peak)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until every worker has registered with the queue, i.e. listens for jobs."""
        queue = adapter.queue()

        def ready() -> bool:
            return len(Worker.all(connection=queue.connection, queue=queue)) >= len(self.processes)

        wait_for(ready, timeout=timeout, what="the workers to start", check=self.check)

    def release(self) -> None:
        """Let held workers take jobs (all at once: a backlog is not drained by whichever
        worker started first)."""
        if self.held:
            suspension.resume(adapter.redis())
            self.held = False

    def stop(self) -> None:
        self.release()
        self.sample()
        for process in self.processes:
            self.bench.stop(process)


class Bench:
    """One run: its options, the figures printed so far, the processes it started and the
    state it must undo (rows, Redis keys, scratch tables, a working directory)."""

    def __init__(self, options: Options, write: Callable[[str], None]):
        self.options = options
        self.write = write
        self.figures: list[Figure] = []
        self.round = 1
        #: Floor measurements of this run: {round: {variant: msg/s}}.
        self.floor: dict[int, dict[str, float]] = {}
        self.processes: list[subprocess.Popen] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="notifier-bench-"))
        client = adapter.redis()
        self.redis_before = {key for p in REDIS_PATTERNS for key in client.scan_iter(match=p)}

    # output
    def figure(
        self,
        scenario: str,
        name: str,
        value: float,
        unit: str,
        label: str,
        *,
        target: float | None = None,
        sense: str = "info",
    ) -> Figure:
        figure = Figure(scenario, name, float(value), unit, label, target, sense)
        self.figures.append(figure)
        self.write(figure.line())
        return figure

    def note(self, text: str) -> None:
        self.write(f"          # {text}")

    # processes
    def spawn(
        self, argv: list[str], *, name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """Start a process in a session of its own (a terminal's Ctrl-C reaches only this
        command, which then stops it), its output in a log file of the run."""
        log = open(self.workdir / f"{name}-{len(self.processes)}.log", "w+b")  # noqa: SIM115
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            argv,
            cwd=settings.BASE_DIR,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log = log
        self.processes.append(process)
        return process

    def log_tail(self, process: subprocess.Popen, lines: int = 30) -> str:
        process.log.flush()
        process.log.seek(0)
        text = process.log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, process: subprocess.Popen) -> None:
        """SIGTERM to the process's group (RQ's warm shutdown), SIGKILL after 30 s."""
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        process.log.close()
        if process in self.processes:
            self.processes.remove(process)

    @contextlib.contextmanager
    def workers(self, n: int | None = None, *, held: bool = False) -> Iterator[Workers]:
        """``n`` workers, ready; ``held`` ones take jobs only after ``release()``."""
        workers = Workers(self, n or self.options.workers, held=held)
        try:
            workers.wait_ready()
            yield workers
        finally:
            workers.stop()

    # state
    def queue_empty(self) -> None:
        """Drop the jobs waiting in the queue (those of in-process measurements)."""
        adapter.queues_empty()

    def reset(self) -> None:
        """Between scenarios: every process stopped, every benchmark row deleted."""
        for process in list(self.processes):
            self.stop(process)
        connection.close()  # a connection broken by a failure must not fail the cleanup
        rows_delete()
        scratch_drop()
        self.queue_empty()

    def close(self, *, keep_rows: bool = False) -> None:
        """At the end, even after a failure or Ctrl-C: undo everything the run did (but its
        rows, with ``keep_rows``)."""
        try:
            for process in list(self.processes):
                self.stop(process)
            connection.close()
            scratch_drop()
            if not keep_rows:
                rows_delete()
            client = adapter.redis()
            created = {
                key for p in REDIS_PATTERNS for key in client.scan_iter(match=p)
            } - self.redis_before
            for chunk in _chunks(sorted(created), 500):
                client.delete(*chunk)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def connection_info() -> dict[str, Any]:
    """Keyword arguments for ``psycopg.connect`` from the default database's settings."""
    db = settings.DATABASES["default"]
    info = {
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
    }
    return {key: value for key, value in info.items() if value is not None}


@dataclass
class Timer:
    """CPU (``time.process_time``) and wall time of a block."""

    cpu: float = 0.0
    wall: float = 0.0
    _started: tuple[float, float] = field(default=(0.0, 0.0), repr=False)

    def __enter__(self) -> Timer:
        self._started = (time.process_time(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = time.process_time() - self._started[0]
        self.wall = time.perf_counter() - self._started[1]
