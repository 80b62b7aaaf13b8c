"""Ad-hoc messages: notify_text() sends a text someone wrote, without an event of its own or a
template, through the outbox: a real RQ worker, the SMTP sink, opt-outs, retries. The text is
never read as a template, and HTML arrives only when it is given as HTML."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.test import Client

from campaigns.api import InvalidArgument, InvalidRecipient, UnknownChannel, notify_text
from campaigns.models import Decision, Event, Message, MessageStatus, OptOut
from campaigns.models.events import ADHOC_EVENT
from campaigns.outbox.dispatch import message_content
from campaigns.outbox.sweep import sweep
from channels.models import ChannelConfig
from tests import factories

pytestmark = pytest.mark.django_db

LITERAL = "Your code is {{ 7|add:1 }} and {% now 'Y' %}; <b>not bold</b> & done."


def test_a_text_reaches_the_smtp_sink_as_written(email_channel, smtp, run_worker, committed):
    with committed():
        result = notify_text(
            {"email": "ann@example.com", "name": "Ann"},
            subject="About your order {{ 7|add:1 }}",
            text=LITERAL,
            channels=["email"],
        )
    (message,) = result.messages
    assert (message.template_id, message.template_version_id) == (None, None)
    assert message.event.key == ADHOC_EVENT
    assert run_worker() == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == (MessageStatus.SENT, 1)
    (received,) = smtp.messages
    assert received["To"] == "ann@example.com"
    assert received["Subject"] == "About your order {{ 7|add:1 }}"
    assert received.get_content_type() == "text/plain"  # a text part, and no HTML made up
    assert received.get_content().strip() == LITERAL
    assert message_content(message) == ("About your order {{ 7|add:1 }}", LITERAL, "")


def test_html_is_sent_only_when_given_as_html(email_channel, smtp, run_worker, committed):
    with committed():
        notify_text(
            {"email": "ann@example.com"},
            subject="Hello",
            text="Hello Ann",
            html="<p>Hello <b>Ann</b></p>",
            channels="email",
        )
    run_worker()
    (received,) = smtp.messages
    assert received.get_content_type() == "multipart/alternative"
    assert received.get_body(("plain",)).get_content().strip() == "Hello Ann"
    assert received.get_body(("html",)).get_content().strip() == "<p>Hello <b>Ann</b></p>"


def test_opted_out_people_are_skipped_with_a_decision(email_channel, django_user_model):
    alice = django_user_model.objects.create_user("alice", "alice@example.com")
    OptOut.objects.create(user=alice)  # everything
    OptOut.objects.create(address="bob@example.com", channel=email_channel)  # this channel
    result = notify_text(
        [alice, {"email": "bob@example.com"}, {"email": "cy@example.com"}],
        subject="Hi",
        text="Hello",
        channels=["email"],
    )
    assert [m.address for m in result.messages] == ["cy@example.com"]
    assert sorted((s.recipient["email"], s.reason) for s in result.skipped) == [
        ("alice@example.com", "opted out"),
        ("bob@example.com", "opted out"),
    ]
    decisions = Decision.objects.filter(event__key=ADHOC_EVENT)
    assert sorted(decisions.values_list("address", "reason", "channel")) == [
        ("alice@example.com", "opted out", "email"),
        ("bob@example.com", "opted out", "email"),
    ]


def test_an_opt_out_made_after_the_call_cancels_it_at_dispatch(
    email_channel, smtp, run_worker, committed
):
    with committed():
        notify_text({"email": "dee@example.com"}, subject="Hi", text="Hello", channels="email")
    OptOut.objects.create(address="dee@example.com")
    run_worker()
    message = Message.objects.get()
    assert (message.status, message.status_reason) == ("cancelled", "opted out")
    assert smtp.count == 0


def test_a_transient_failure_is_retried(email_channel, smtp, run_worker, committed):
    smtp.replies = ["451 4.3.0 Mailbox busy, try later"]
    with committed():
        notify_text({"email": "ann@example.com"}, subject="Hi", text=LITERAL, channels="email")
    run_worker()
    message = Message.objects.get()
    assert message.status == MessageStatus.RETRYING and "451" in message.last_error
    with committed():
        assert sweep().enqueued == 1  # retries are due at once in tests
    run_worker()
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 2)
    assert list(message.attempt_log.values_list("number", "status")) == [
        (1, "retrying"),
        (2, "sent"),
    ]
    (received,) = smtp.messages
    assert received.get_content().strip() == LITERAL  # the same text on the second try


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"channels": []}, InvalidArgument, "channels is empty"),
        ({"channels": None}, InvalidArgument, "channels must be a channel key"),
        ({"channels": ["fax"]}, UnknownChannel, "'fax'"),
        ({"text": "   \n"}, InvalidArgument, "text is empty"),
        ({"text": 42}, InvalidArgument, "text must be a str"),
        ({"subject": "Hi\nBcc: x@evil.test"}, InvalidArgument, "subject must be one line"),
        ({"recipients": {"email": "not-an-address"}}, InvalidRecipient, "recipient #1"),
        ({"recipients": "ann@example.com"}, InvalidRecipient, "recipients must be mappings"),
    ],
)
def test_bad_input_is_refused_by_name_and_writes_nothing(email_channel, kwargs, error, words):
    call = {
        "recipients": {"email": "ann@example.com"},
        "subject": "Hi",
        "text": "Hello",
        "channels": ["email"],
        **kwargs,
    }
    with pytest.raises(error, match=words):
        notify_text(call.pop("recipients"), **call)
    assert not Message.objects.exists()


def test_the_builtin_event_comes_back_when_missing(email_channel):
    """Made by migration 0024; a database flushed since (tests) gets it on first use."""
    Event.objects.filter(key=ADHOC_EVENT).delete()
    (message,) = notify_text(
        {"email": "ann@example.com"}, subject="Hi", text="Hello", channels="email"
    ).messages
    assert message.event.key == ADHOC_EVENT
    assert Event.objects.filter(key=ADHOC_EVENT).count() == 1


def test_an_inbox_item_keeps_the_text_and_the_page_escapes_it(
    client, django_user_model, run_worker, committed
):
    ChannelConfig.objects.update_or_create(
        key="inbox",
        defaults={"name": "In-app inbox", "backend": "channels.backends.inbox.InboxBackend"},
    )
    alice = django_user_model.objects.create_user("alice", "alice@example.com", password="pw")
    with committed():
        notify_text(alice, subject="<i>Note</i>", text=LITERAL, channels="inbox")
    run_worker()
    message = Message.objects.get()
    assert (message.status, message.text) == ("sent", LITERAL)
    client.force_login(alice)
    html = client.get("/inbox/").content.decode()
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html and "<b>not bold</b>" not in html
    assert "{{ 7|add:1 }}" in html


def test_a_factory_made_template_event_is_not_needed(email_channel):
    """No event, no template: nothing but the built-in event is read or made."""
    assert not factories.TemplateFactory._meta.model.objects.exists()
    notify_text({"email": "ann@example.com"}, text="Hello", channels="email")
    assert Message.objects.get().subject == ""


def test_its_unsubscribe_link_turns_off_adhoc_messages_on_the_channel(
    email_channel, smtp, run_worker, committed
):
    with committed():
        notify_text({"email": "ann@example.com"}, subject="Hi", text="Hello", channels="email")
    run_worker()
    (received,) = smtp.messages
    url = re.search(r"<(https?://[^>]+)>", received["List-Unsubscribe"]).group(1)
    response = Client(enforce_csrf_checks=True).post(
        urlsplit(url).path, {"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    assert OptOut.objects.get().event.key == ADHOC_EVENT
    again = notify_text({"email": "ann@example.com"}, text="Hello?", channels="email")
    assert [s.reason for s in again.skipped] == ["opted out"]
