"""Health and readiness: is the process up, and can the whole send path work?

``readiness()`` runs five checks, each bounded in time, and says per check whether it passed
and, for a terminal (``manage.py notifier_status``), why not:

- ``database``: a ``SELECT 1`` (PostgreSQL: under a 2 s statement timeout; the connection
  itself under ``connect_timeout``, see settings);
- ``migrations``: every migration this code knows is applied (once true, remembered for the
  life of the process: a running process's code does not change);
- ``redis``: a PING on a client of its own with 1 s timeouts;
- ``workers``: at least one RQ worker listening on the notifier queue is alive (its key,
  which RQ's heartbeat keeps from expiring, is still there);
- ``sweep``: the last sweep pass ended less than ``SWEEP_STALE_AFTER`` seconds ago (each pass
  writes its end time to one Redis key: ``sweep_mark``).

``/readyz`` shows only pass or fail per check; the details (errors, counts, ages) are for
``notifier_status``, run by someone who already has a shell.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from redis import ConnectionPool, Redis
from redis.exceptions import RedisError
from rq import Queue, cron_scheduler_registry, worker_registration
from rq.cron import RQ_KEY_PREFIX

from campaigns.conf import app_settings
from campaigns.connections import redis_connection

logger = logging.getLogger("notifier.health")

#: Set by every sweep pass as it ends: the Unix time it ended.
SWEEP_KEY = "notifier:sweep:last"
STATEMENT_TIMEOUT_MS = 2000
REDIS_TIMEOUT = 1.0


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class Readiness:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def public(self) -> dict:
        """What an anonymous client may see: pass or fail per check, nothing else."""
        return {
            "status": "ok" if self.ok else "fail",
            "checks": {check.name: "ok" if check.ok else "fail" for check in self.checks},
        }


@cache
def probe_redis() -> Redis:
    """A client to the queue's Redis with short timeouts, so a probe never hangs on a Redis
    that does not answer (the workers' own client waits as long as it takes)."""
    pool = redis_connection().connection_pool
    kwargs = {
        **pool.connection_kwargs,
        "socket_timeout": REDIS_TIMEOUT,
        "socket_connect_timeout": REDIS_TIMEOUT,
    }
    return Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class, **kwargs))


def sweep_mark(*, at: float | None = None) -> None:
    """Note that a sweep pass just ended (one SET; a Redis outage only skips the note)."""
    try:
        redis_connection().set(SWEEP_KEY, repr(time.time() if at is None else at))
    except RedisError as error:
        logger.warning("could not record the sweep's time: %s", error)


def _database() -> str:
    connection = connections[DEFAULT_DB_ALIAS]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


_migrated = False


def _migrations() -> str:
    global _migrated  # remembered per process, see the module's docstring
    if _migrated:
        return "all applied"
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        raise RuntimeError(f"{len(plan)} unapplied: {names}{' …' if len(plan) > 5 else ''}")
    _migrated = True
    return "all applied"


def _redis() -> str:
    probe_redis().ping()
    return "answers"


def workers_alive(client: Redis | None = None) -> list[dict[str, str]]:
    """The RQ workers of the notifier queue whose key has not expired: name, host, state."""
    client = client or probe_redis()
    queue = Queue(app_settings.QUEUE, connection=client)
    keys = sorted(worker_registration.get_keys(queue=queue))
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hmget(key, "hostname", "state")
        rows = pipe.execute()
    alive = []
    for key, (hostname, state) in zip(keys, rows, strict=True):
        if hostname is None:  # its key expired: the worker died without unregistering
            continue
        alive.append(
            {
                "name": key.rsplit(":", 1)[-1],
                "hostname": hostname.decode(),
                "state": (state or b"").decode(),
            }
        )
    return alive


def schedulers_alive(client: Redis | None = None) -> list[dict[str, str]]:
    """RQ cron schedulers whose key has not expired (it is refreshed at every loop)."""
    client = client or probe_redis()
    names = sorted(cron_scheduler_registry.get_keys(client))
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hget(f"{RQ_KEY_PREFIX}:cron_scheduler:{name}", "hostname")
        hosts = pipe.execute()
    return [
        {"name": name, "hostname": host.decode()}
        for name, host in zip(names, hosts, strict=True)
        if host is not None
    ]


def _workers() -> str:
    alive = workers_alive()
    if not alive:
        raise RuntimeError(f"no live worker listens on the queue {app_settings.QUEUE!r}")
    return f"{len(alive)} alive"


def sweep_age(client: Redis | None = None) -> float | None:
    """Seconds since the last sweep pass ended; None if none is recorded."""
    value = (client or probe_redis()).get(SWEEP_KEY)
    return None if value is None else max(time.time() - float(value), 0.0)


def _sweep() -> str:
    age = sweep_age()
    limit = app_settings.SWEEP_STALE_AFTER
    if age is None:
        raise RuntimeError("no sweep has run (is notifier_cron running, and a worker?)")
    if age > limit:
        raise RuntimeError(f"the last sweep ended {age:.0f} s ago (more than {limit} s)")
    return f"{age:.0f} s ago"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _database,
    "migrations": _migrations,
    "redis": _redis,
    "workers": _workers,
    "sweep": _sweep,
}
#: Checks that cannot pass when another has failed (skipped, failed, so each stays fast).
NEEDS = {"migrations": "database", "workers": "redis", "sweep": "redis"}


def readiness() -> Readiness:
    result = Readiness()
    failed: set[str] = set()
    for name, check in CHECKS.items():
        needed = NEEDS.get(name)
        if needed in failed:
            result.checks.append(Check(name, False, f"not checked: {needed} failed"))
            failed.add(name)
            continue
        try:
            detail = check()
        except Exception as error:  # a check's failure is its result, never a 500
            failed.add(name)
            text = " ".join(str(error).split()) or type(error).__name__
            result.checks.append(Check(name, False, f"{type(error).__name__}: {text}"))
        else:
            result.checks.append(Check(name, True, detail))
    return result


def local_process_alive(kind: str) -> bool:
    """Whether a worker (``kind="worker"``) or a cron scheduler (``"scheduler"``) of this host
    is registered and alive in Redis: a container's health check."""
    host = socket.gethostname()
    found = workers_alive() if kind == "worker" else schedulers_alive()
    return any(entry["hostname"] == host for entry in found)
