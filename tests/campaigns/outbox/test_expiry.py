"""Expiry: a message not sent by its ``expires_at`` is cancelled as "expired" — by the sweep
while it waits, by the dispatch recheck once claimed, instead of a retry that would land
after it — and never reaches the SMTP server. Real PostgreSQL, Redis, RQ and SMTP."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.api import InvalidArgument, notify
from campaigns.models import Decision, Message
from campaigns.outbox.dispatch import message_dispatch
from campaigns.outbox.sweep import sweep
from tests import factories
from tests.campaigns.outbox.test_dispatch import drive

CONTEXT = {"order_id": "A-1"}


@pytest.fixture
def code_event(email_channel):
    template = factories.TemplateFactory(
        channel=email_channel,
        event__key="login-code",
        subject="Your code {{ order_id }}",
        text_body="Code {{ order_id }}",
    )
    return template.event


@pytest.mark.django_db
def test_a_message_expiring_while_it_waits_is_cancelled_and_never_sent(
    code_event, smtp, run_worker, committed
):
    later = timezone.now() + dt.timedelta(hours=1)
    with committed():
        (message,) = notify(
            "login-code",
            {"email": "ann@example.com", "user_id": None},
            CONTEXT,
            scheduled_at=later,
            expires_at=dt.timedelta(minutes=10),
        ).messages
    assert message.expires_at == later + dt.timedelta(minutes=10)

    with committed():  # due, but still before its expiry: not yet due at later - 1s
        summary = sweep(now=later + dt.timedelta(minutes=11))
    assert (summary.cancelled, summary.enqueued) == (1, 0)
    run_worker()
    message.refresh_from_db()
    assert (message.status, message.status_reason) == ("cancelled", "expired")
    assert smtp.messages == []
    decision = Decision.objects.get()
    assert (decision.reason, decision.address, decision.channel) == (
        "expired",
        "ann@example.com",
        "email",
    )


@pytest.mark.django_db
def test_a_message_within_its_expiry_is_sent(code_event, smtp, run_worker, committed):
    with committed():
        notify(
            "login-code", {"email": "ann@example.com"}, CONTEXT, expires_at=dt.timedelta(minutes=5)
        )
    run_worker()
    message = Message.objects.get()
    assert message.status == "sent"
    assert [m["Subject"] for m in smtp.messages] == ["Your code A-1"]


@pytest.mark.django_db
def test_a_retry_that_would_come_after_the_expiry_is_cancelled_instead(
    code_event, email_channel, smtp, run_worker, committed
):
    email_channel.retry_delay = 120  # the first retry comes two minutes later
    email_channel.save(update_fields=["retry_delay"])
    smtp.always = "451 4.3.0 Mailbox busy, try later"
    with committed():
        notify(
            "login-code",
            {"email": "ann@example.com"},
            CONTEXT,
            expires_at=timezone.now() + dt.timedelta(seconds=30),
        )
    run_worker()  # the retry delay (60 s and more by default) lands after the expiry
    message = Message.objects.get()
    assert (message.status, message.status_reason, message.attempts) == ("cancelled", "expired", 1)
    assert "451" in message.last_error
    smtp.always = None
    drive(run_worker, committed)
    assert smtp.messages == []
    assert list(Decision.objects.values_list("reason", flat=True)) == ["expired"]


@pytest.mark.django_db
def test_a_retrying_message_whose_expiry_passes_is_cancelled_by_the_sweep(
    code_event, smtp, run_worker, committed
):
    smtp.always = "451 4.3.0 Mailbox busy, try later"  # the server is down for a while
    expires = timezone.now() + dt.timedelta(hours=1)
    with committed():
        notify("login-code", {"email": "ann@example.com"}, CONTEXT, expires_at=expires)
    run_worker()
    message = Message.objects.get()
    assert message.status == "retrying"
    smtp.always = None  # back up, but only after the expiry
    with committed():
        summary = sweep(now=expires + dt.timedelta(seconds=1))
    assert (summary.cancelled, summary.enqueued) == (1, 0)
    run_worker()
    message.refresh_from_db()
    assert (message.status, message.status_reason) == ("cancelled", "expired")
    assert smtp.messages == []


@pytest.mark.django_db
def test_dispatch_cancels_a_claimed_message_past_its_expiry(code_event, smtp):
    (message,) = notify(
        "login-code", {"email": "ann@example.com"}, CONTEXT, expires_at=dt.timedelta(seconds=5)
    ).messages
    # The worker was slow: by the time it claims the row, the expiry has passed.
    Message.objects.filter(pk=message.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    summary = message_dispatch(message_ids=[message.pk])
    assert summary.as_dict() == {"claimed": 1, "cancelled": 1}
    message.refresh_from_db()
    assert (message.status, message.status_reason) == ("cancelled", "expired")
    assert smtp.messages == []
    assert Decision.objects.get().reason == "expired"


@pytest.mark.django_db
def test_the_event_ttl_applies_when_notify_gives_none(code_event, smtp, run_worker, committed):
    code_event.expires_after = dt.timedelta(minutes=10)
    code_event.save(update_fields=["expires_after"])
    before = timezone.now()
    later = before + dt.timedelta(hours=2)
    with committed():
        (now_message,) = notify("login-code", {"email": "a@example.com"}, CONTEXT).messages
        (scheduled,) = notify(
            "login-code", {"email": "b@example.com"}, CONTEXT, scheduled_at=later
        ).messages
        (given,) = notify(
            "login-code", {"email": "c@example.com"}, CONTEXT, expires_at=dt.timedelta(hours=1)
        ).messages
    ten = dt.timedelta(minutes=10)
    assert before + ten <= now_message.expires_at <= timezone.now() + ten
    assert scheduled.expires_at == later + ten  # counted from when it is due
    assert given.expires_at > timezone.now() + dt.timedelta(minutes=59)
    run_worker()  # a@ and c@ go out within their expiry
    with committed():
        summary = sweep(now=later + dt.timedelta(minutes=11))  # b@ waited past its own
    assert (summary.cancelled, summary.enqueued) == (1, 0)
    run_worker()
    assert sorted(str(m["To"]) for m in smtp.messages) == ["a@example.com", "c@example.com"]
    assert dict(Message.objects.values_list("address", "status_reason")) == {
        "a@example.com": "",
        "b@example.com": "expired",
        "c@example.com": "",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (dt.datetime(2030, 1, 1), "timezone-aware"),
        ("soon", "datetime, a timedelta"),
        (dt.timedelta(0), "positive"),
        (dt.timedelta(seconds=-5), "positive"),
    ],
)
def test_expires_at_is_checked_before_anything_is_written(code_event, value, problem):
    with pytest.raises(InvalidArgument, match=problem) as raised:
        notify("login-code", {"email": "a@example.com"}, CONTEXT, expires_at=value)
    assert raised.value.argument == "expires_at"
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_an_expiry_before_the_message_is_due_is_refused(code_event):
    later = timezone.now() + dt.timedelta(hours=1)
    with pytest.raises(InvalidArgument, match="not after"):
        notify(
            "login-code",
            {"email": "a@example.com"},
            CONTEXT,
            scheduled_at=later,
            expires_at=later - dt.timedelta(minutes=1),
        )
    assert not Message.objects.exists()
