"""Fallback and escalation (README "Fallback and escalation"): a message in the inbox, then by
email if it is not seen in time, then by SMS; cancelled when the earlier one is seen,
hastened when it fails for good. Real RQ workers, the real SMTP sink, the fake Twilio API,
PostgreSQL and Redis; time is moved by making a waiting step due, never by sleeping."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.api import notify
from campaigns.exceptions import InvalidArgument, UnknownChannel
from campaigns.models import EscalationStep, Message, MessageStatus
from campaigns.outbox.actions import messages_requeue
from campaigns.outbox.catalog import catalog_clear, catalog_settled
from campaigns.outbox.escalation import delay_parse, steps_check
from campaigns.outbox.sweep import sweep
from campaigns.recipients.inbox import message_mark_read
from campaigns.tracking.delivery import delivery_events_apply
from channels.models import ChannelConfig
from channels.webhooks.base import DeliveryEvent
from tests import factories
from tests.campaigns.outbox.test_notify import NOTIFY_QUERIES
from tests.channels.backends.test_twilio import FakeTwilio, twilio_channel
from tests.channels.fakes import FakeServer

CONTEXT = {"order_id": "A-7"}


@pytest.fixture
def story(db, smtp_server):
    """An event with templates on the inbox, email and SMS channels, and Ann."""
    sink, port = smtp_server
    inbox, _ = ChannelConfig.objects.update_or_create(
        key="inbox",
        defaults={"name": "In-app inbox", "backend": "channels.backends.inbox.InboxBackend"},
    )
    email = factories.email_channel(port=port)
    event = factories.EventFactory(
        key="order-shipped", variables=[{"name": "order_id", "label": "Order", "sample": "A-1"}]
    )
    for channel in (inbox, email):
        factories.TemplateFactory(
            event=event,
            channel=channel,
            subject="Order {{ order_id }} shipped",
            text_body="Hello {{ recipient.name }}, order {{ order_id }} is on its way.",
        )
    ann = factories.UserFactory(first_name="Ann", email="ann@example.com")
    return {"sink": sink, "inbox": inbox, "email": email, "event": event, "ann": ann}


def sms_template(story, server) -> ChannelConfig:
    if server:  # the channel of the fake Twilio, with its template
        return twilio_channel(server)
    channel = factories.sms_channel()
    factories.TemplateFactory(
        event=story["event"], channel=channel, subject="", text_body="Order {{ order_id }}"
    )
    return channel


def due_now(message: Message) -> None:
    """Move time on for one waiting step: it is due now (as if its delay had passed)."""
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())


def steps_of(result) -> dict[str, Message]:
    return {m.channel.key: Message.objects.get(pk=m.pk) for m in result.messages}


@pytest.fixture
def twilio():
    server = FakeServer(FakeTwilio()).start()
    yield server
    server.stop()


# --- the chain ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_unseen_inbox_message_goes_by_email_after_the_delay(story, run_worker):
    ann, sink = story["ann"], story["sink"]
    result = notify("order-shipped", ann, CONTEXT, channels=["inbox"], then=[("email", "15m")])

    run_worker()
    steps = steps_of(result)
    assert steps["inbox"].status == MessageStatus.SENT
    email = steps["email"]
    assert (email.status, email.escalates_from_id) == (MessageStatus.SCHEDULED, steps["inbox"].pk)
    assert email.escalation_condition == "seen"
    minutes = (email.next_attempt_at - steps["inbox"].created_at).total_seconds() / 60
    assert 14.9 < minutes <= 15
    assert sink.count == 0  # not before its time

    due_now(email)
    assert sweep().enqueued == 1
    run_worker()

    email.refresh_from_db()
    assert email.status == MessageStatus.SENT, email.last_error
    assert email.status_reason == "inbox not seen in 15m"
    (mail,) = sink.messages
    assert mail["To"] == "ann@example.com" and mail["Subject"] == "Order A-7 shipped"


@pytest.mark.django_db(transaction=True)
def test_seen_before_the_delay_cancels_the_email_and_the_timeline_says_why(story, run_worker):
    ann, sink = story["ann"], story["sink"]
    result = notify("order-shipped", ann, CONTEXT, channels=["inbox"], then=[("email", "15m")])
    run_worker()

    client = Client()
    client.force_login(ann)
    assert client.get("/inbox/").status_code == 200  # Ann looks: the item is seen

    email = steps_of(result)["email"]
    assert email.status == MessageStatus.CANCELLED
    assert email.status_reason == "seen in the inbox"
    due_now(email)
    sweep()
    run_worker()
    assert sink.count == 0
    assert Message.objects.get(pk=email.pk).status == MessageStatus.CANCELLED

    staff = factories.UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    html = client.get(reverse("admin:campaigns_person", args=["user", ann.pk])).content.decode()
    assert "seen in the inbox" in html
    assert "goes if the" in html and "In-app inbox message</a> is not seen" in html


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_step_sent_again_by_support_goes(story, run_worker):
    ann, sink = story["ann"], story["sink"]
    result = notify("order-shipped", ann, CONTEXT, channels=["inbox"], then=[("email", "15m")])
    run_worker()
    message_mark_read(uuid=steps_of(result)["inbox"].uuid)
    email = steps_of(result)["email"]
    assert email.status == MessageStatus.CANCELLED

    assert messages_requeue(queryset=Message.objects.filter(pk=email.pk)) == 1
    run_worker()

    email.refresh_from_db()
    assert email.status == MessageStatus.SENT and email.escalation_condition == ""
    assert email.escalates_from_id == steps_of(result)["inbox"].pk  # the chain stays visible
    assert [m["To"] for m in sink.messages] == ["ann@example.com"]


@pytest.mark.django_db(transaction=True)
def test_seen_while_the_step_waits_in_the_queue_still_sends_nothing(story, run_worker):
    """The race: the inbox item is seen after the sweep queued the email (here: its seen_at
    written without the cancel) — the dispatch's recheck reads it and cancels the email."""
    ann, sink = story["ann"], story["sink"]
    result = notify("order-shipped", ann, CONTEXT, channels=["inbox"], then=[("email", "15m")])
    run_worker()
    steps = steps_of(result)
    due_now(steps["email"])
    assert sweep().enqueued == 1  # queued: its job waits for a worker
    Message.objects.filter(pk=steps["inbox"].pk).update(seen_at=timezone.now())

    run_worker()

    email = Message.objects.get(pk=steps["email"].pk)
    assert (email.status, email.status_reason) == (MessageStatus.CANCELLED, "seen on inbox")
    assert sink.count == 0


@pytest.mark.django_db(transaction=True)
def test_a_permanent_failure_sends_the_next_step_at_once(story, twilio, run_worker):
    sms_template(story, twilio)
    sink = story["sink"]
    person = {"user_id": story["ann"].pk, "phone": "+15005550001"}  # Twilio: not a number

    result = notify("order-shipped", person, CONTEXT, channels=["sms"], then=[("email", "1h")])
    run_worker()  # the SMS fails for good, the email goes in the same run

    steps = steps_of(result)
    assert steps["sms"].status == MessageStatus.FAILED
    assert "21211" in steps["sms"].last_error
    assert steps["email"].status == MessageStatus.SENT, steps["email"].last_error
    assert steps["email"].status_reason == "sms failed for good"
    assert [m["To"] for m in sink.messages] == ["ann@example.com"]


@pytest.mark.django_db(transaction=True)
def test_seen_in_the_inbox_cancels_every_later_step(story, run_worker):
    sms_template(story, None)
    ann = story["ann"]
    person = {"user_id": ann.pk, "phone": "+4915112345678"}
    result = notify(
        "order-shipped",
        person,
        CONTEXT,
        channels=["inbox"],
        then=[("email", "15m"), ("sms", "1h")],
    )
    run_worker()
    steps = steps_of(result)
    assert steps["sms"].escalates_from_id == steps["email"].pk

    message_mark_read(uuid=steps["inbox"].uuid)  # the signed "mark as read" link

    steps = steps_of(result)
    assert steps["email"].status_reason == "read (its mark-as-read link)"
    assert steps["sms"].status_reason == "read (its mark-as-read link)"
    assert {steps["email"].status, steps["sms"].status} == {MessageStatus.CANCELLED}


@pytest.mark.django_db(transaction=True)
def test_an_opened_email_cancels_the_sms_after_it(story, run_worker):
    sms_template(story, None)
    ann, sink = story["ann"], story["sink"]
    person = {"user_id": ann.pk, "phone": "+4915112345678"}
    result = notify(
        "order-shipped", person, CONTEXT, channels=["inbox"], then=[("email", "1m"), ("sms", "1h")]
    )
    run_worker()
    due_now(steps_of(result)["email"])
    sweep()
    run_worker()
    email = steps_of(result)["email"]
    assert email.status == MessageStatus.SENT and sink.count == 1

    applied = delivery_events_apply(
        [DeliveryEvent(channel_key="", provider_id=email.provider_id, status="opened")]
    )

    assert applied.recorded == 1
    sms = steps_of(result)["sms"]
    assert (sms.status, sms.status_reason) == (MessageStatus.CANCELLED, "opened on email")


@pytest.mark.django_db(transaction=True)
def test_a_not_delivered_step_is_cancelled_by_a_delivered_inbox_message(story, run_worker):
    ann, sink = story["ann"], story["sink"]
    result = notify(
        "order-shipped", ann, CONTEXT, channels=["inbox"], then=[("email", "5m", "delivered")]
    )
    run_worker()
    email = steps_of(result)["email"]
    assert email.escalation_condition == "delivered"

    due_now(email)
    sweep()
    run_worker()

    email.refresh_from_db()
    assert (email.status, email.status_reason) == (MessageStatus.CANCELLED, "delivered on inbox")
    assert sink.count == 0


def test_no_earlier_message_for_a_recipient_means_the_next_step_goes_now(story):
    """A recipient with no inbox (no user) has no first step: their email is due at once,
    and the SMS waits on it."""
    sms_template(story, None)
    person = {"email": "bo@example.com", "phone": "+4915112345678"}
    result = notify(
        "order-shipped", person, CONTEXT, channels=["inbox"], then=[("email", "15m"), ("sms", "1h")]
    )
    steps = steps_of(result)
    assert "inbox" not in steps and [s.reason for s in result.skipped] == ["no address"]
    assert steps["email"].status == MessageStatus.QUEUED and not steps["email"].escalates_from_id
    assert steps["sms"].status == MessageStatus.SCHEDULED
    assert steps["sms"].escalates_from_id == steps["email"].pk


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("then", "problem"),
    [
        ("email", "must be a list of steps"),
        ({"email": "15m"}, "must be a list of steps"),
        ([("email",)], "step 1 must be (channel, delay)"),
        ([("email", "15x")], "step 1: the delay '15x' is not a duration"),
        ([("email", "0m")], "must be more than nothing"),
        ([("email", dt.timedelta(days=31))], "longer than 30 days"),
        ([("email", "15m", "read")], "the condition 'read' is unknown; one of: seen, delivered"),
        ([(7, "15m")], "the channel must be a channel key"),
        ([("email", "1h"), ("sms", "15m")], "step 2: its delay"),
        ([("email", "1m"), ("email", "2m")], "is a step already"),
        ([("inbox", "1m")], "is in channels= already"),
        ([{"channel": "email", "after": "1m"}], "unknown keys ['after']"),
        ([("email", "1m")] * 6, "at most 5"),
    ],
)
def test_bad_then_values_are_refused_by_name_and_nothing_is_written(story, then, problem):
    with pytest.raises(InvalidArgument) as raised:
        notify("order-shipped", story["ann"], CONTEXT, channels=["inbox"], then=then)
    assert raised.value.argument == "then"
    assert problem in str(raised.value)
    assert Message.objects.count() == 0


def test_then_needs_the_first_steps_channels(story):
    with pytest.raises(InvalidArgument, match="needs channels="):
        notify("order-shipped", story["ann"], CONTEXT, then=[("email", "15m")])
    assert Message.objects.count() == 0


def test_an_unknown_step_channel_writes_nothing(story):
    with pytest.raises(UnknownChannel):
        notify("order-shipped", story["ann"], CONTEXT, channels=["inbox"], then=[("fax", "1h")])
    assert Message.objects.count() == 0


def test_the_forms_a_step_may_take(story):
    assert steps_check(None) == []
    steps = steps_check(
        [
            ("email", 90),
            {"channel": "sms", "delay": dt.timedelta(hours=1), "condition": "delivered"},
        ]
    )
    assert [(s.channel, s.delay, s.condition) for s in steps] == [
        ("email", dt.timedelta(seconds=90), "seen"),
        ("sms", dt.timedelta(hours=1), "delivered"),
    ]
    assert delay_parse("2d") == dt.timedelta(days=2)
    assert delay_parse(" 30 s ") == dt.timedelta(seconds=30)
    with pytest.raises(ValueError, match="not a duration"):
        delay_parse(True)


def test_an_idempotent_call_with_steps_returns_its_steps_again(story):
    ann = story["ann"]
    first = notify(
        "order-shipped",
        ann,
        CONTEXT,
        channels=["inbox"],
        then=[("email", "1h")],
        idempotency_key="k-1",
    )
    again = notify(
        "order-shipped",
        ann,
        CONTEXT,
        channels=["inbox"],
        then=[("email", "1h")],
        idempotency_key="k-1",
    )
    assert [m.pk for m in again.messages] == [m.pk for m in first.messages]
    assert len(first.messages) == 2


# --- the event's own steps (admin) ----------------------------------------------------------


def test_an_events_steps_escalate_a_trigger_that_gives_no_then(story):
    EscalationStep.objects.create(
        event=story["event"], channel=story["email"], delay_minutes=15, condition="delivered"
    )
    catalog_settled()

    result = notify("order-shipped", story["ann"], CONTEXT)  # first: every other channel

    steps = steps_of(result)
    assert set(steps) == {"inbox", "email"}
    assert steps["inbox"].status == MessageStatus.QUEUED
    email = steps["email"]
    assert (email.status, email.escalates_from_id) == (MessageStatus.SCHEDULED, steps["inbox"].pk)
    assert email.escalation_condition == "delivered"
    assert email.scheduled_at - email.created_at > dt.timedelta(minutes=14)

    alone = notify("order-shipped", story["ann"], CONTEXT, then=[])  # this call: no steps
    assert {m.channel.key for m in alone.messages} == {"inbox", "email"}
    assert {m.status for m in alone.messages} == {MessageStatus.QUEUED}
    first_email = notify("order-shipped", story["ann"], CONTEXT, channels=["email"])
    assert [m.channel.key for m in first_email.messages] == ["email"]  # its step is first


def test_a_step_on_an_inactive_channel_is_left_out(story):
    sms = sms_template(story, None)
    EscalationStep.objects.create(event=story["event"], channel=sms, delay_minutes=60)
    ChannelConfig.objects.filter(pk=sms.pk).update(is_active=False)
    catalog_clear()

    result = notify("order-shipped", story["ann"], CONTEXT, channels=["inbox"])

    assert [m.channel.key for m in result.messages] == ["inbox"]


def test_the_event_page_edits_its_escalation(story, admin_client):
    event = story["event"]
    url = reverse("admin:campaigns_event_change", args=[event.pk])
    html = admin_client.get(url).content.decode()
    assert "Escalation (if not seen, then …)" in html
    assert "escalation_steps-TOTAL_FORMS" in html


#: notify() with one later step, for one recipient: the recipients' read and the first
#: step's INSERT (as without), the step's own read of its recipients, its INSERT, and the
#: transaction (savepoint and release) that holds both INSERTs.
ESCALATION_QUERIES = NOTIFY_QUERIES[1] + 4


def test_a_step_costs_its_read_and_its_insert_and_a_call_without_one_nothing(
    story, django_assert_num_queries
):
    ann = story["ann"]
    catalog_settled()
    notify("order-shipped", ann, CONTEXT, channels=["inbox"])  # the catalog: read and kept
    with django_assert_num_queries(NOTIFY_QUERIES[1]):
        notify("order-shipped", ann, CONTEXT, channels=["inbox"])
    with django_assert_num_queries(ESCALATION_QUERIES):
        result = notify("order-shipped", ann, CONTEXT, channels=["inbox"], then=[("email", "1h")])
    assert len(result.messages) == 2
