"""A channel's rate limit holds across workers: two RQ worker processes sending through one
webhook channel never exceed it, measured where the requests arrive."""

from __future__ import annotations

import time

import pytest

from campaigns.api import notify
from campaigns.models import Message
from campaigns.outbox.dispatch import message_dispatch
from campaigns.outbox.ratelimit import RateLimiter
from tests import factories
from tests.channels.fakes import FakeServer, Reply
from tests.conftest import output, worker_queues

pytestmark = pytest.mark.slow  # starts processes of its own

RATE, BURST = 8.0, 4


def webhook_channel(url: str, **fields):
    return factories.ChannelFactory(
        key="hooks",
        backend="webhook",
        config={"url": f"{url}/hook", "secret": "s" * 32, "address_key": "email"},
        **fields,
    )


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


@pytest.mark.django_db(transaction=True)
def test_two_workers_stay_under_the_channels_rate(spawn, close_db_after):
    with FakeServer(lambda request: Reply(200, {"id": "ok"})) as server:
        channel = webhook_channel(server.url, rate_limit=RATE, rate_burst=BURST)
        factories.TemplateFactory(channel=channel, event__key="order-shipped")
        env = {"NOTIFIER_BATCH_SIZE": "10"}
        notify("order-shipped", [{"email": f"p{i}@x.io"} for i in range(40)], {"order_id": "1"})
        workers = [
            spawn(
                "rqworker",
                *worker_queues(),
                "--burst",
                "--worker-class",
                "rq.worker.SimpleWorker",
                env_overrides=env,
            )
            for _ in range(2)
        ]
        deadline = time.monotonic() + 60
        while len(server.requests) < 40 and time.monotonic() < deadline:
            time.sleep(0.2)
        for worker in workers:
            worker.wait(timeout=30)
            assert worker.returncode == 0, output(worker)
    arrivals = [r.received_at for r in server.requests]
    assert len(arrivals) == 40
    assert Message.objects.filter(status="sent").count() == 40
    # A token bucket allows at most burst + rate * window in any window (one of slack for
    # the moment a token is taken vs. the moment the request lands).
    for window in (0.5, 1.0, 2.0):
        assert max_in_window(arrivals, window) <= BURST + RATE * window + 1, window
    assert max(arrivals) - min(arrivals) >= (40 - BURST) / RATE - 0.5


def test_a_batch_that_would_wait_too_long_puts_the_rest_back(db):
    with FakeServer(lambda request: Reply(200, {"id": "ok"})) as server:
        channel = webhook_channel(server.url, rate_limit=0.01, rate_burst=2)  # one per 100 s
        factories.TemplateFactory(channel=channel, event__key="order-shipped")
        ids = [
            m.pk
            for m in notify(
                "order-shipped", [{"email": f"p{i}@x.io"} for i in range(5)], {"order_id": "1"}
            ).messages
        ]
        summary = message_dispatch(message_ids=ids)
    assert summary.as_dict() == {"claimed": 5, "sent": 2, "retrying": 3}
    assert len(server.requests) == 2
    held = Message.objects.filter(status="retrying")
    assert {m.attempts for m in held} == {0}  # waiting for the rate is not an attempt
    assert all("rate limited" in m.last_error for m in held)


def test_the_bucket_refills_at_its_rate(db, redis_connection):
    limiter = RateLimiter(channel_id=999, rate=20, burst=3, max_wait=5)
    start = time.monotonic()
    for _ in range(3 + 10):
        assert limiter.take()
    elapsed = time.monotonic() - start
    assert 10 / 20 - 0.1 <= elapsed <= 10 / 20 + 0.5


def test_a_message_that_cannot_be_rendered_takes_no_turn_of_the_rate(db):
    """Broken messages (their template version is gone) are broken before the rate is asked:
    the two turns the bucket holds go to two that are sent."""
    with FakeServer(lambda request: Reply(200, {"id": "ok"})) as server:
        channel = webhook_channel(server.url, rate_limit=0.01, rate_burst=2)  # one per 100 s
        factories.TemplateFactory(channel=channel, event__key="order-shipped")
        people = [{"email": f"p{i}@x.io"} for i in range(5)]
        ids = sorted(m.pk for m in notify("order-shipped", people, {"order_id": "1"}).messages)
        Message.objects.filter(pk__in=ids[:2]).update(template_version=None)
        summary = message_dispatch(message_ids=ids)
    assert summary.as_dict() == {"claimed": 5, "broken": 2, "sent": 2, "retrying": 1}
    assert len(server.requests) == 2
    statuses = dict(Message.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert [statuses[i] for i in ids] == ["broken", "broken", "sent", "sent", "retrying"]
