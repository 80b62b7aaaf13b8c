"""Campaigns under load, with real worker processes and an SMTP server in its own process:
a worker killed mid fan-out, and a cancel while two workers send."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

import pytest

from campaigns.broadcast.control import campaign_cancel, campaign_sending
from campaigns.broadcast.fanout import campaign_schedule
from campaigns.broadcast.report import campaign_progress
from campaigns.models import Audience, Campaign, CampaignChunk, Contact, Message
from channels.conf import channel_settings
from tests import factories
from tests.conftest import output, worker_queues

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def newsletter(port: int, contacts: int, **channel_fields) -> Campaign:
    channel = factories.email_channel(port=port)
    for name, value in channel_fields.items():
        setattr(channel, name, value)
    channel.save()
    event = factories.EventFactory(
        key="newsletter", marketing=True, variables=[{"name": "headline", "sample": "News"}]
    )
    factories.TemplateFactory(
        event=event,
        channel=channel,
        subject="{{ headline }}",
        text_body="Hello {{ recipient.name }}: {{ headline }}",
    )
    audience = Audience.objects.create(name="Newsletter", kind="contacts")
    Contact.objects.bulk_create(
        [
            Contact(audience=audience, email=f"reader{i}@example.com", name=f"Reader {i}")
            for i in range(contacts)
        ],
        batch_size=2000,
    )
    campaign = Campaign.objects.create(
        name="Launch", event=event, audience=audience, context={"headline": "We launched"}
    )
    campaign.channels.set([channel])
    return campaign


def workers(spawn, env: dict, n: int = 2) -> list[subprocess.Popen]:
    return [
        spawn(
            "rqworker",
            *worker_queues(),
            "--worker-class",
            "rq.worker.SimpleWorker",
            env_overrides=env,
            start_new_session=True,
        )
        for _ in range(n)
    ]


def wait_for(condition, processes, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: " + "\n".join(
            output(process)[-3000:] for process in processes
        )
        for process in processes:
            assert process.poll() is None, output(process)
        time.sleep(0.05)


def test_5000_contacts_two_workers_one_killed_mid_fan_out_each_served_once(
    id_sink, spawn, close_db_after, settings
):
    """Both workers take chunk jobs, each writing its chunk and then sending it: SIGKILL one
    then. Killed while writing, its chunk's transaction rolls back and the sweep enqueues the
    chunk again; killed while sending, its rows stay under their lease until the sweep takes
    them back (what the journal says was sent is recorded as sent). In the end each contact has
    exactly one message, and the SMTP server sees each Message-ID once, except at most the one
    that was in flight."""
    port, ids = id_sink
    campaign = newsletter(port, 5000)
    env = {
        "NOTIFIER_CAMPAIGN_CHUNK": "100",
        "NOTIFIER_QUEUED_TIMEOUT": "2",
        "NOTIFIER_BATCH_SIZE": "200",
        "NOTIFIER_LEASE_SECONDS": "5",
    }
    settings.NOTIFIER = {**settings.NOTIFIER, "CAMPAIGN_CHUNK": 100}  # chunks planned here
    victim, survivor = workers(spawn, env)
    campaign_schedule(campaign)  # 50 chunk jobs enqueued on commit
    chunks = CampaignChunk.objects.filter(campaign=campaign)
    assert chunks.count() == 50

    wait_for(
        lambda: chunks.filter(status="done").count() >= 8,
        [victim, survivor],
        timeout=120,
        what="the fan-out to begin",
    )
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    assert chunks.filter(status="pending").exists()  # killed mid fan-out
    sweeper = spawn("process_notifications", "--loop", "--interval", "0.5", env_overrides=env)
    expected = 5000
    wait_for(
        lambda: (
            len(ids()) >= expected
            and not chunks.filter(status="pending").exists()
            and Message.objects.filter(status="sent").count() >= expected
        ),
        [survivor, sweeper],
        timeout=240,
        what="every contact to be served",
    )
    time.sleep(1.5)  # anything still in flight would land now and show as a duplicate

    messages = Message.objects.filter(campaign=campaign)
    assert messages.count() == expected
    assert Counter(messages.values_list("status", flat=True)) == {"sent": expected}
    assert messages.values("address").distinct().count() == expected
    counts = Counter(ids())
    assert set(counts) == {
        f"<{uuid}@{channel_settings.EMAIL_DOMAIN}>"
        for uuid in messages.values_list("uuid", flat=True)
    }
    assert sum(counts.values()) - len(counts) <= 1


def test_cancel_mid_run_nothing_is_sent_once_no_batch_is_sending(id_sink, spawn, close_db_after):
    """Two workers send at a channel rate of 40/s; the cancel answers at once, the batches in
    flight stop within a moment (what the panel shows as "Stopping"), and the SMTP server
    receives nothing after that."""
    port, ids = id_sink
    campaign = newsletter(port, 1500, rate_limit=40, rate_burst=5)
    env = {"NOTIFIER_BATCH_SIZE": "100"}
    processes = workers(spawn, env)
    campaign_schedule(campaign)
    wait_for(lambda: len(ids()) >= 60, processes, timeout=120, what="sending to begin")

    asked = time.monotonic()
    result = campaign_cancel(campaign)
    assert time.monotonic() - asked < 1.0  # no web worker waits for the batches
    # Rows waiting (stopped now) and rows the chunk jobs hold for their next batches
    # (cancelled by those jobs, which ask the campaign's state before each message).
    assert result.stopped + result.sending > 0
    wait_for(lambda: campaign_sending(campaign) == 0, processes, timeout=10, what="batches to stop")
    assert campaign_progress(campaign).finished
    received_at_answer = len(ids())
    time.sleep(2.0)  # a send the cancel missed would arrive now

    assert len(ids()) == received_at_answer
    messages = Message.objects.filter(campaign=campaign)
    statuses = Counter(messages.values_list("status", flat=True))
    assert statuses["sent"] == received_at_answer < 1500
    assert statuses["sent"] + statuses["cancelled"] == messages.count() == 1500
    assert not messages.filter(status="sending").exists()
    assert Campaign.objects.get().status == "cancelled"
