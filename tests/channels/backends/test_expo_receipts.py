"""Expo push receipts: after ``PUSH_RECEIPT_DELAY`` the poll asks the fake Expo
(``test_expo.FakeExpo``) for the receipts of sent pushes and records them: ``ok`` →
delivered, ``DeviceNotRegistered`` → failed and the token deactivated, other errors → failed
with Expo's text, no receipt yet → asked again, until ``PUSH_RECEIPT_MAX_AGE`` → unknown."""

from __future__ import annotations

import datetime as dt

import django_rq
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.api import notify
from campaigns.conf import app_settings
from campaigns.jobs import push_receipts
from campaigns.models import ChannelAddress, Event, Message, MessageStatus
from campaigns.tracking.receipts import push_receipts_poll
from channels.backends.base import PermanentError
from channels.backends.expo import ExpoPushBackend

from ... import factories
from ..conftest import notify_and_dispatch
from ..fakes import Reply
from .test_expo import ACCESS_TOKEN, FakeExpo, expo_channel, token

LATER = dt.timedelta(minutes=16)


@pytest.fixture
def expo(serve):
    server = serve(FakeExpo())
    server.fake = server.handler
    return server


def by_token(messages) -> dict[str, Message]:
    return {m.address.removeprefix("ExponentPushToken[").rstrip("]"): m for m in messages}


def reload(messages) -> dict[str, Message]:
    return by_token(Message.objects.filter(pk__in=[m.pk for m in messages]))


@pytest.mark.django_db(transaction=True)
def test_notify_worker_then_the_receipts_job(expo, run_worker, settings):
    expo_channel(expo)
    users = {}
    for name in ("ok-1", "gone-1", "creds-1", "late-1"):
        users[name] = factories.UserFactory(username=name)
        ChannelAddress.objects.create(user=users[name], kind="push_token", address=token(name))

    notify("order-shipped", list(users.values()), {"order_id": "A-7"}, channels=["push"])
    assert run_worker() == 1
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.SENT}

    # Too early: nothing is asked.
    assert push_receipts_poll().polled == 0
    assert expo.fake.receipt_requests == []

    settings.NOTIFIER = {**settings.NOTIFIER, "PUSH_RECEIPT_DELAY": 0}
    django_rq.get_queue(app_settings.QUEUE).enqueue(push_receipts)
    assert run_worker() == 1

    assert len(expo.fake.receipt_requests) == 1
    assert sorted(expo.fake.receipt_requests[0]) == sorted(
        Message.objects.values_list("provider_id", flat=True)
    )
    messages = by_token(Message.objects.all())
    assert messages["ok-1"].delivery_status == "delivered"
    assert messages["ok-1"].status_reason == "" and messages["ok-1"].delivery_updated_at
    assert messages["gone-1"].delivery_status == "failed"
    assert messages["gone-1"].status_reason == (
        'Expo DeviceNotRegistered: "ExponentPushToken[gone-1]" is not a registered push '
        "notification recipient"
    )
    assert messages["creds-1"].delivery_status == "failed"
    assert messages["creds-1"].status_reason.startswith("Expo InvalidCredentials: The Apple")
    assert messages["late-1"].delivery_status == ""  # asked again next time
    assert {m.status for m in messages.values()} == {MessageStatus.SENT}

    inactive = ChannelAddress.objects.filter(is_active=False)
    assert [a.address for a in inactive] == [token("gone-1")]
    assert "DeviceNotRegistered" in inactive[0].deactivated_reason
    again = notify("order-shipped", users["gone-1"], {"order_id": "A-8"}, channels=["push"])
    assert again.messages == [] and again.skipped[0].reason == "no address"


def test_receipts_are_asked_again_until_they_come_or_max_age(expo, db):
    channel = expo_channel(expo)
    messages = notify_and_dispatch(channel, [{"push_token": token(n)} for n in ("late-1", "ok-1")])
    sent_at = messages[0].sent_at

    summary = push_receipts_poll(now=sent_at + LATER)
    assert (summary.polled, summary.delivered, summary.pending) == (2, 1, 1)

    summary = push_receipts_poll(now=sent_at + dt.timedelta(hours=2))
    assert (summary.polled, summary.pending, summary.unknown) == (1, 1, 0)
    assert expo.fake.receipt_requests[-1] == [messages[0].provider_id]

    summary = push_receipts_poll(now=sent_at + dt.timedelta(hours=24, minutes=1))
    assert (summary.polled, summary.unknown) == (1, 1)
    late = reload(messages)["late-1"]
    assert late.delivery_status == "unknown" and "PUSH_RECEIPT_MAX_AGE" in late.status_reason

    assert push_receipts_poll(now=sent_at + dt.timedelta(days=2)).polled == 0
    assert len(expo.fake.receipt_requests) == 3


def test_a_refused_receipts_request_changes_nothing(expo, db):
    channel = expo_channel(expo)
    messages = notify_and_dispatch(channel, [{"push_token": token(n)} for n in ("ok-1", "gone-1")])
    channel.config = {**channel.config, "access_token": "revoked"}
    channel.save(update_fields=["config"])

    summary = push_receipts_poll(now=messages[0].sent_at + LATER)

    assert (summary.polled, summary.errors, summary.delivered) == (2, 1, 0)
    assert {m.delivery_status for m in reload(messages).values()} == {""}
    assert not ChannelAddress.objects.exists()


def test_a_5xx_leaves_the_receipts_for_the_next_poll(expo, db):
    channel = expo_channel(expo)
    (message,) = notify_and_dispatch(channel, {"push_token": token("ok-1")})
    expo.script = [Reply(503, "upstream connect error")]

    assert push_receipts_poll(now=message.sent_at + LATER).errors == 1
    message.refresh_from_db()
    assert message.delivery_status == ""

    assert push_receipts_poll(now=message.sent_at + LATER).delivered == 1
    message.refresh_from_db()
    assert message.delivery_status == "delivered"


def test_only_sent_expo_messages_are_polled(expo, db):
    push = expo_channel(expo)
    other = factories.ChannelFactory(key="mail", backend="locmem")
    factories.TemplateFactory(event=Event.objects.get(key="order-shipped"), channel=other)
    pushed = notify_and_dispatch(
        push, [{"push_token": token("ok-1")}, {"push_token": token("big-1")}]
    )
    mailed = notify_and_dispatch(other, {"email": "ann@example.com"})
    assert [m.status for m in pushed] == [MessageStatus.SENT, MessageStatus.FAILED]

    summary = push_receipts_poll(now=timezone.now() + LATER)

    assert (summary.polled, summary.delivered) == (1, 1)
    assert expo.fake.receipt_requests == [[pushed[0].provider_id]]
    assert Message.objects.get(pk=mailed[0].pk).delivery_status == ""
    assert Message.objects.get(pk=pushed[1].pk).delivery_status == ""


def test_receipts_are_asked_for_in_requests_of_at_most_1000(expo):
    backend = ExpoPushBackend(options={"base_url": expo.url, "access_token": ACCESS_TOKEN})
    ids = [f"0190-unknown-{n:05d}" for n in range(2500)]

    with backend:
        assert backend.receipts(ids) == {}  # none ready

    assert [len(r) for r in expo.fake.receipt_requests] == [1000, 1000, 500]
    assert [i for request in expo.fake.receipt_requests for i in request] == ids
    assert expo.connections == 1
    with pytest.raises(PermanentError, match="UNAUTHORIZED"):
        ExpoPushBackend(options={"base_url": expo.url}).receipts(ids[:1])


def test_the_number_of_queries_does_not_grow_with_receipts(expo, db):
    channel = expo_channel(expo)

    def poll(names: list[str]) -> tuple[int, list[Message]]:
        messages = notify_and_dispatch(
            channel, [{"push_token": token(n)} for n in names], order_id=names[0]
        )
        with CaptureQueriesContext(connection) as queries:
            summary = push_receipts_poll(now=timezone.now() + LATER)
        assert summary.polled == len(names)
        return len(queries), messages

    few, _ = poll(["ok-a", "gone-a"])
    names = [f"ok-{n}" for n in range(20)] + [f"gone-{n}" for n in range(20)]
    names += [f"creds-{n}" for n in range(5)] + [f"late-{n}" for n in range(5)]
    many, messages = poll(names)

    assert many == few, (few, many)
    statuses = [m.delivery_status for m in reload(messages).values()]
    assert (statuses.count("delivered"), statuses.count("failed"), statuses.count("")) == (
        20,
        25,
        5,
    )
    assert ChannelAddress.objects.filter(is_active=False).count() == 21
