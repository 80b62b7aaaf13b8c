"""A large notify() is sent by as many workers as ``DRAIN_JOBS``: the lane's drain job enqueues
a helper while more than a batch waits."""

from __future__ import annotations

import time

import pytest

from campaigns.api import notify
from campaigns.models import Message
from campaigns.outbox.dispatch import message_dispatch
from campaigns.outbox.queueing import TRANSACTIONAL, get_queue, ready_take
from tests import factories
from tests.conftest import output, worker_queues


def drain_jobs() -> list[tuple]:
    return [job.args for job in get_queue(TRANSACTIONAL).get_jobs()]


def drain_flags(redis_connection) -> set[bytes]:
    return set(redis_connection.scan_iter(match="notifier:drain:*"))


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_a_drain_that_leaves_more_than_a_batch_enqueues_one_helper_up_to_drain_jobs(
    jobs, settings, transactional_db, redis_connection, run_worker
):
    settings.NOTIFIER = {**settings.NOTIFIER, "BATCH_SIZE": 5, "DRAIN_JOBS": jobs}
    factories.TemplateFactory(channel=factories.memory_channel(), event__key="order-shipped")
    people = [{"email": f"p{i}@example.com", "name": f"P{i}"} for i in range(23)]
    messages = notify("order-shipped", people, {"order_id": "1"}).messages
    assert drain_jobs() == [("transactional",)]  # the lane's own drain job

    taken = ready_take(TRANSACTIONAL, 5)  # as that job's first batch: 18 left
    helpers = [("transactional", 2)] if jobs > 1 else []
    assert drain_jobs() == [("transactional",), *helpers]
    taken += ready_take(TRANSACTIONAL, 5)  # 13 left: slot 2 is taken, a third drain may start
    if jobs == 3:
        helpers.append(("transactional", 3))
    assert drain_jobs() == [("transactional",), *helpers]

    message_dispatch(message_ids=taken)  # what the two takes got, sent here
    assert run_worker() == 1 + len(helpers)  # the drains send the 13 left between them
    statuses = Message.objects.filter(pk__in=[m.pk for m in messages]).values_list(
        "status", flat=True
    )
    assert list(statuses) == ["sent"] * 23
    assert drain_flags(redis_connection) == set()  # every drain dropped its flag


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_workers_share_one_large_notify(id_sink, spawn, close_db_after):
    """Two worker processes, one notify() of 600 emails in batches of 20: both send batches,
    and each message reaches the SMTP server once."""
    port, received = id_sink
    factories.TemplateFactory(
        channel=factories.email_channel(port=port), event__key="order-shipped"
    )
    env = {"NOTIFIER_BATCH_SIZE": "20", "NOTIFIER_DRAIN_JOBS": "2"}
    workers = [
        spawn(
            "rqworker",
            *worker_queues(),
            "--worker-class",
            "campaigns.workers.Worker",
            env_overrides=env,
        )
        for _ in range(2)
    ]
    people = [{"email": f"person{i}@example.com"} for i in range(600)]
    notify("order-shipped", people, {"order_id": "1"})

    def batches() -> list[int]:
        return [output(worker).count("dispatch batch on") for worker in workers]

    # A batch is logged once its sends are journalled, after the SMTP server has the mail: wait
    # for the last batch's line too, not only for the 600th message.
    deadline = time.monotonic() + 120
    while (len(received()) < 600 or sum(batches()) < 600 // 20) and time.monotonic() < deadline:
        for worker in workers:
            assert worker.poll() is None, output(worker)
        time.sleep(0.2)
    ids = received()
    assert len(ids) == len(set(ids)) == 600
    logged = batches()
    assert all(count > 0 for count in logged), logged
    assert sum(logged) >= 600 // 20
