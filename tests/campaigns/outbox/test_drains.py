"""A large notify() is sent by as many workers as ``DRAIN_JOBS``: the lane's drain job enqueues
a helper while more than a batch waits."""

from __future__ import annotations

import re
import time

import pytest

from campaigns.api import notify
from campaigns.models import Message
from campaigns.outbox.dispatch import drain_batch_size, message_dispatch, messages_drain
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
    """Two worker processes, one notify() of 600 emails in batches of 20 and more: both send
    batches, and each message reaches the SMTP server once."""
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

    def claimed() -> list[list[int]]:  # each worker's batches, by the messages each claimed
        return [
            [int(n) for n in re.findall(r"dispatch batch on [^:]+: (\d+) claimed", output(worker))]
            for worker in workers
        ]

    # A batch is logged once its sends are journalled, after the SMTP server has the mail: wait
    # for the last batch's line too, not only for the 600th message.
    deadline = time.monotonic() + 120
    while (len(received()) < 600 or sum(map(sum, claimed())) < 600) and time.monotonic() < deadline:
        for worker in workers:
            assert worker.poll() is None, output(worker)
        time.sleep(0.2)
    ids = received()
    assert len(ids) == len(set(ids)) == 600
    logged = claimed()
    assert all(logged), logged  # both workers sent batches
    assert sum(map(sum, logged)) == 600
    # The first batch of a drain job is BATCH_SIZE; later ones grow while the channel is fast,
    # up to five times as many.
    assert all(batches[0] <= 20 and max(batches) <= 100 for batches in logged), logged


@pytest.mark.parametrize(
    ("done", "elapsed", "room", "size"),
    [
        (200, 0.04, 0.5, 1000),  # 200 in 40 ms: 2,500 fit in half a second; five batches' worth
        (200, 0.2, 0.5, 500),  # 200 in 200 ms: 500 fit
        (200, 0.45, 0.5, 222),
        (200, 0.9, 0.5, 200),  # slow: never fewer than BATCH_SIZE
        (200, 0.04, -0.1, 200),  # no room left (a bulk drain past its budget)
        (0, 0.0, 0.5, 200),  # nothing sent yet
    ],
)
def test_a_drains_next_batch_is_what_its_pace_sends_in_the_room_left(
    settings, done, elapsed, room, size
):
    settings.NOTIFIER = {**settings.NOTIFIER, "BATCH_SIZE": 200}
    assert drain_batch_size(done, elapsed, room) == size


def test_a_drain_on_a_fast_channel_takes_larger_batches_after_its_first(
    settings, transactional_db, caplog
):
    """The first batch is BATCH_SIZE; at the pace of an in-memory channel the next ones are
    five times as large, what half a second (``DRAIN_BUDGET``) sends at that pace and more."""
    settings.NOTIFIER = {**settings.NOTIFIER, "BATCH_SIZE": 10, "DRAIN_BUDGET": 0.5}
    factories.TemplateFactory(channel=factories.memory_channel(), event__key="order-shipped")
    people = [{"email": f"p{i}@example.com", "name": f"P{i}"} for i in range(130)]
    messages = notify("order-shipped", people, {"order_id": "1"}).messages
    with caplog.at_level("INFO", logger="notifier"):
        summary = messages_drain(lane=TRANSACTIONAL)
    sizes = [
        int(n)
        for record in caplog.records
        for n in re.findall(r"^dispatch batch on [^:]+: (\d+) claimed", record.getMessage())
    ]
    assert summary.counts["sent"] == 130
    assert sizes == [10, 50, 50, 20]
    statuses = Message.objects.filter(pk__in=[m.pk for m in messages]).values_list(
        "status", flat=True
    )
    assert list(statuses) == ["sent"] * 130
