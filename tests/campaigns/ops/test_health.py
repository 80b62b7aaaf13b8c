"""/healthz and /readyz as a load balancer or Docker sees them, and notifier_status as an
operator does: pass or fail per check for anyone, the reasons only in the terminal."""

from __future__ import annotations

import json
import time

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from rq import SimpleWorker

from campaigns.jobs import sweep_pass
from campaigns.ops.health import sweep_mark
from campaigns.outbox.queueing import get_queue

pytestmark = pytest.mark.django_db
CHECKS = ("database", "migrations", "redis", "workers", "sweep")


def ready(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    return response.status_code, json.loads(response.content)


@pytest.fixture
def worker(redis_connection):
    """A worker registered on the notifier queue, as ``rqworker`` registers itself."""
    worker_ = SimpleWorker([get_queue()], connection=redis_connection)
    worker_.register_birth()
    yield worker_
    worker_.register_death()


def test_healthz_answers_without_touching_anything(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert (response.status_code, response.content) == (200, b"ok\n")


def test_readyz_fails_without_a_worker_or_a_sweep_and_says_only_which(client):
    status, body = ready(client)
    assert status == 503
    assert body == {
        "status": "fail",
        "checks": {
            "database": "ok",
            "migrations": "ok",
            "redis": "ok",
            "workers": "fail",
            "sweep": "fail",
        },
    }


def test_readyz_passes_with_a_live_worker_and_a_recent_sweep(client, worker):
    sweep_pass()  # what RQ's cron job runs; it notes when it ended
    status, body = ready(client)
    assert (status, body) == (200, {"status": "ok", "checks": dict.fromkeys(CHECKS, "ok")})


def test_a_worker_whose_key_expired_is_not_alive(client, worker, redis_connection):
    sweep_pass()
    redis_connection.delete(worker.key)  # what a SIGKILLed worker leaves once its TTL ran out
    status, body = ready(client)
    assert status == 503
    assert body["checks"]["workers"] == "fail"


def test_a_sweep_older_than_sweep_stale_after_fails(client, worker, settings):
    sweep_mark(at=time.time() - 300)
    assert ready(client)[1]["checks"]["sweep"] == "fail"
    settings.NOTIFIER = {**settings.NOTIFIER, "SWEEP_STALE_AFTER": 600}
    assert ready(client) == (200, {"status": "ok", "checks": dict.fromkeys(CHECKS, "ok")})


@override_settings(
    ALLOWED_HOSTS=["notify.example.com"], SECURE_SSL_REDIRECT=True, METRICS_TOKEN="x" * 40
)
def test_probes_answer_at_any_address_over_http_while_other_pages_stay_guarded(client):
    """Docker and Prometheus ask at the container's address, over http."""
    host = {"HTTP_HOST": "10.1.2.3:8000"}
    assert client.get("/healthz", **host).status_code == 200
    assert client.get("/readyz", **host).status_code == 503
    metrics = client.get("/metrics", **host, HTTP_AUTHORIZATION=f"Bearer {'x' * 40}")
    assert metrics.status_code == 200
    assert client.get("/admin/", **host).status_code == 400  # ALLOWED_HOSTS still holds
    redirect = client.get("/admin/", HTTP_HOST="notify.example.com")
    assert redirect.status_code == 301
    assert redirect["Location"].startswith("https://")


def test_probes_take_only_get_and_head(client):
    assert client.post("/healthz").status_code == 405
    assert client.head("/healthz").status_code == 200


def test_notifier_status_prints_the_reasons(capsys):
    with pytest.raises(CommandError, match="not ready: workers, sweep"):
        call_command("notifier_status")
    out = capsys.readouterr().out
    assert "ok   database" in out
    assert "FAIL workers     RuntimeError: no live worker listens on the queue 'notifier'" in out
    assert "FAIL sweep       RuntimeError: no sweep has run" in out


def test_notifier_status_lists_the_live_workers(capsys, worker):
    sweep_pass()
    call_command("notifier_status")
    out = capsys.readouterr().out
    assert f"worker {worker.name} on {worker.hostname}: " in out
    assert out.rstrip().endswith("ready")


def test_notifier_status_local_checks_this_hosts_worker(capsys, redis_connection):
    with pytest.raises(CommandError, match="no live worker of this host"):
        call_command("notifier_status", local="worker")
    worker = SimpleWorker([get_queue()], connection=redis_connection)
    worker.register_birth()  # its hostname is this machine's
    call_command("notifier_status", local="worker")
    assert "a worker of this host" in capsys.readouterr().out
    worker.register_death()
    with pytest.raises(CommandError, match="no live scheduler of this host"):
        call_command("notifier_status", local="scheduler")
