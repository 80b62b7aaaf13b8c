"""``manage.py seed_demo``: demo data that a re-run never duplicates, and a round of messages
sent through the real API in three states (sent, scheduled, queued for the worker)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from campaigns.management.commands import seed_demo
from campaigns.models import (
    Campaign,
    Contact,
    Decision,
    DigestItem,
    Event,
    Message,
    MessageStatus,
    Template,
)
from campaigns.outbox.dispatch import message_content
from channels.models import ChannelConfig


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def demo_rows() -> dict[str, list]:
    """Every row seed_demo creates, except messages, as comparable tuples."""
    return {
        "channels": list(ChannelConfig.objects.order_by("pk").values_list("pk", "key")),
        "events": list(Event.objects.order_by("pk").values_list("pk", "key")),
        "templates": list(
            Template.objects.order_by("pk").values_list(
                "pk", "event__key", "channel__key", "language", "published_id"
            )
        ),
        "users": list(get_user_model().objects.order_by("pk").values_list("pk", "username")),
    }


@pytest.mark.django_db
def test_seed_demo_twice_creates_the_data_once():
    run("--no-messages")
    first = demo_rows()
    output = run("--no-messages")

    assert demo_rows() == first
    assert "(0 new)" in output
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_seed_demo_channels_events_templates_and_users():
    output = run("--no-messages")

    channels = {c.key: c for c in ChannelConfig.objects.filter(key__in=seed_demo.CHANNELS)}
    assert set(channels) == set(seed_demo.CHANNELS)
    assert all(channel.is_active for channel in channels.values())
    assert channels["console"].backend == "channels.backends.console.ConsoleBackend"
    assert channels["email"].declared_in.startswith("settings")  # the one settings declare

    for key, spec in seed_demo.EVENTS.items():
        event = Event.objects.get(key=key)
        assert event.is_active
        assert event.variable_names == [v["name"] for v in spec["variables"]]
        templates = {(t.channel.key, t.language): t for t in event.templates.all()}
        for channel in ("email", "inbox"):
            for language in ("en", "de"):
                template = templates[(channel, language)]
                assert template.subject and template.text_body
        for language in ("en", "de"):
            assert templates[("email", language)].html_body.startswith("<mjml>")

    user_model = get_user_model()
    for spec in seed_demo.USERS:
        user = user_model.objects.get(username=spec["username"])
        assert user.email == spec["email"]
        assert user.check_password(seed_demo.DEMO_PASSWORD)
        assert user.notification_profile.language == spec["language"]  # campaigns read it
        assert f"{spec['username']} / {seed_demo.DEMO_PASSWORD}" in output
    for spec in seed_demo.STAFF:
        user = user_model.objects.get(username=spec["username"])
        assert user.is_staff and not user.is_superuser
        assert list(user.groups.values_list("name", flat=True)) == [spec["group"]]
    campaigns = Campaign.objects.filter(status="draft").values_list("name", flat=True)
    assert set(campaigns) == {"Spring newsletter", "Product update for users"}
    assert Contact.objects.filter(audience__name="Newsletter readers").count() == len(
        seed_demo.CONTACTS
    )


@pytest.mark.django_db
def test_seed_demo_sends_a_round_of_messages_in_three_states():
    before = timezone.now()
    output = run()

    messages = list(Message.objects.select_related("channel"))
    statuses = {m.status for m in messages}
    assert {MessageStatus.SENT, MessageStatus.SCHEDULED, MessageStatus.QUEUED} <= statuses
    assert statuses <= {
        MessageStatus.SENT,
        MessageStatus.SCHEDULED,
        MessageStatus.QUEUED,
        MessageStatus.CANCELLED,  # the escalation whose inbox item was seen
    }

    for message in messages:
        if message.status == MessageStatus.SENT:
            assert message.sent_at is not None and message.tag == seed_demo.TAG
            subject, text, html = message_content(message)
            assert subject and text
            if message.channel.key == "email":  # the MJML body was compiled to HTML
                assert "<html" in html.lower() and "<mjml" not in html
        elif message.status == MessageStatus.SCHEDULED and message.digest_key:
            assert message.next_attempt_at > before and message.tag == seed_demo.TAG
        elif message.status == MessageStatus.CANCELLED and message.escalates_from_id:
            assert message.status_reason == "seen in the inbox"
        elif message.status == MessageStatus.SCHEDULED:
            assert message.scheduled_at > before and message.tag == seed_demo.TAG
        elif message.status == MessageStatus.CANCELLED:
            assert message.status_reason == "expired" and message.event.key == "login-code"
        else:  # left for the RQ worker
            assert message.tag == seed_demo.WORKER_TAG

    # Both languages went out, each to the user who reads it.
    languages = {spec["username"]: spec["language"] for spec in seed_demo.USERS}
    sent = [m for m in messages if m.status == MessageStatus.SENT]
    assert {m.language for m in sent} == set(seed_demo.LANGUAGES)
    for message in sent:
        assert message.language == languages[message.user.username]

    # Every channel of the demo carried messages; the output says how many of each.
    assert {m.channel.key for m in messages} == set(seed_demo.CHANNELS)
    apart = (  # the escalations, the digest and the expired code have lines of their own
        {m.escalates_from_id for m in messages}
        | {m.pk for m in messages if m.escalates_from_id or m.digest_key}
        | {m.pk for m in messages if m.status_reason == "expired"}
    )
    for status in (MessageStatus.SENT, MessageStatus.SCHEDULED, MessageStatus.QUEUED):
        count = sum(m.status == status for m in messages if m.pk not in apart)
        assert f"{count} {status}" in output
    for label, status in (("digested", "scheduled"), ("expired", "cancelled")):
        assert f"messages {label}: 3 (3 {status})" in output  # one per channel


@pytest.mark.django_db
def test_seed_demo_shows_a_digest_and_an_expired_message():
    run()
    digest = Message.objects.get(event__key="comment-posted", channel__key="email")
    assert digest.status == MessageStatus.SCHEDULED and digest.digest_key
    assert digest.digest_items.count() == 3
    subject, text, html = message_content(digest)
    assert subject == "3 new comments"
    assert "Bob: Great post!" in text and "Carla: Thanks" in text and "Emi: +1" in text
    assert "Great post!" in html and "Carla" in html
    expired = Message.objects.get(event__key="login-code", channel__key="email")
    assert (expired.status, expired.status_reason, expired.sent_at) == (
        MessageStatus.CANCELLED,
        "expired",
        None,
    )
    assert Decision.objects.filter(reason="expired", event__key="login-code").exists()


@pytest.mark.django_db
def test_seed_demo_shows_an_escalation_that_went_and_one_that_was_cancelled():
    output = run()

    steps = list(
        Message.objects.filter(escalates_from__isnull=False).select_related(
            "escalates_from__channel", "channel", "user"
        )
    )
    by_user = {m.user.username: m for m in steps}
    assert set(by_user) == {"alice", "bob"}
    went, cancelled = by_user["alice"], by_user["bob"]
    for step in steps:
        assert step.channel.key == "email" and step.escalates_from.channel.key == "inbox"
        assert step.escalates_from.status == MessageStatus.SENT
    assert (went.status, went.status_reason) == (MessageStatus.SENT, "inbox not seen in 15m")
    assert went.escalates_from.seen_at is None
    assert (cancelled.status, cancelled.status_reason) == (
        MessageStatus.CANCELLED,
        "seen in the inbox",
    )
    assert cancelled.escalates_from.seen_at is not None
    assert "messages escalated: 4 (1 cancelled, 3 sent)" in output


@pytest.mark.django_db
def test_seed_demo_rerun_adds_one_round_and_keeps_operator_edits():
    run()
    round_size = Message.objects.filter(digest_key="").count()
    template = Template.objects.get(event__key="welcome", channel__key="email", language="en")
    template.subject = "Edited in the admin"
    template.save()
    ChannelConfig.objects.filter(key="console").update(is_active=False)
    Event.objects.filter(key="welcome").update(is_active=False)

    run()

    assert Message.objects.filter(digest_key="").count() == 2 * round_size
    # The second round's comments join the first's digests (or, past the hour, new ones).
    assert DigestItem.objects.count() == 2 * 3 * 3  # three comments on three channels, twice
    template.refresh_from_db()
    assert template.subject == "Edited in the admin"
    assert ChannelConfig.objects.get(key="console").is_active
    assert Event.objects.get(key="welcome").is_active
