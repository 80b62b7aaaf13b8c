"""Email status events through django-anymail's tracking signal: the message learns what
happened, and a hard bounce or a complaint suppresses the address on that channel."""

from __future__ import annotations

import base64
import json

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.core.checks import run_checks
from django.test import Client

from campaigns.api import notify
from campaigns.models import Message, OptOut
from campaigns.outbox.dispatch import message_dispatch
from tests import factories


@pytest.fixture
def esp_channel(db, settings):
    settings.MAILERS = {
        **settings.MAILERS,
        "esp": {"BACKEND": "anymail.backends.test.EmailBackend"},
    }
    channel = factories.ChannelFactory(key="esp-mail", backend="email", config={"mailer": "esp"})
    factories.TemplateFactory(channel=channel, event__key="order-shipped")
    return channel


def sent_message(address: str) -> Message:
    (message,) = notify("order-shipped", {"email": address}, {"order_id": "1"}).messages
    message_dispatch(message_ids=[message.pk])
    message.refresh_from_db()
    assert message.status == "sent"
    return message


def esp_event(event_type: str, message: Message, **fields) -> None:
    event = AnymailTrackingEvent(
        event_type=event_type, message_id=message.provider_id, recipient=message.address, **fields
    )
    tracking.send(sender=object, event=event, esp_name="Postmark")


def test_the_esps_message_id_is_kept(esp_channel):
    message = sent_message("ann@example.com")
    assert message.provider_id and not message.provider_id.startswith("<")


def test_delivered_and_opened_update_the_message(esp_channel):
    message = sent_message("ann@example.com")
    esp_event("delivered", message)
    message.refresh_from_db()
    assert message.delivery_status == "delivered" and message.delivery_updated_at
    esp_event("opened", message)
    message.refresh_from_db()
    assert message.delivery_status == "opened"
    assert OptOut.objects.count() == 0


@pytest.mark.parametrize("event_type", ["bounced", "complained"])
def test_bounces_and_complaints_suppress_the_address_on_that_channel(esp_channel, event_type):
    message = sent_message("gone@example.com")
    esp_event(event_type, message, description="550 5.1.1 user unknown")
    message.refresh_from_db()
    assert message.delivery_status == event_type
    (optout,) = OptOut.objects.all()
    assert (optout.address, optout.channel, optout.event) == ("gone@example.com", esp_channel, None)
    assert event_type in optout.reason and "Postmark" in optout.reason
    again = notify("order-shipped", {"email": "gone@example.com"}, {"order_id": "2"})
    assert [s.reason for s in again.skipped] == ["opted out"]


def test_events_for_unknown_messages_change_nothing(esp_channel):
    message = sent_message("ann@example.com")
    message.provider_id = "someone-elses-id"
    esp_event("bounced", message)
    assert OptOut.objects.count() == 0
    assert Message.objects.get(pk=message.pk).delivery_status == ""


# --- the webhook over HTTP, as Postmark posts it ---------------------------------------------

SECRET = "notifier-hooks:Xq2pC9vLr7tW4mZk"  # the test's own webhook credentials
URL = "/anymail/postmark/tracking/"


def postmark_bounce(message: Message, *, email: str, record_type: str = "Bounce") -> str:
    """A bounce (or spam complaint) webhook body as Postmark documents it."""
    kind = {"Bounce": "HardBounce", "SpamComplaint": "SpamComplaint"}[record_type]
    return json.dumps(
        {
            "RecordType": record_type,
            "MessageStream": "outbound",
            "ID": 4323372036854775807,
            "Type": kind,
            "TypeCode": 1 if kind == "HardBounce" else 512,
            "Name": "Hard bounce" if kind == "HardBounce" else "Spam complaint",
            "Tag": "",
            "MessageID": message.provider_id,
            "Metadata": {},
            "ServerID": 23,
            "Description": "The server was unable to deliver your message (ex: unknown "
            "user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "Email": email,
            "From": "shop@example.com",
            "BouncedAt": "2026-11-05T16:33:54.9070259Z",
            "DumpAvailable": False,
            "Inactive": True,
            "CanActivate": True,
            "Subject": "Order 1 shipped",
        }
    )


def basic_auth(credentials: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


@pytest.fixture
def webhook_secret(settings):
    settings.ANYMAIL = {**getattr(settings, "ANYMAIL", {}), "WEBHOOK_SECRET": SECRET}
    return SECRET


def test_without_a_webhook_secret_tracking_posts_are_refused(esp_channel, settings):
    settings.ANYMAIL = {**getattr(settings, "ANYMAIL", {}), "WEBHOOK_SECRET": []}
    message = sent_message("ann@example.com")
    body = postmark_bounce(message, email="ann@example.com")
    for headers in ({}, basic_auth(SECRET)):
        response = Client().post(URL, body, content_type="application/json", **headers)
        assert response.status_code == 403
    assert OptOut.objects.count() == 0
    assert Message.objects.get(pk=message.pk).delivery_status == ""


@pytest.mark.parametrize("credentials", [None, "notifier-hooks:wrong", "someone:else"])
def test_tracking_posts_without_the_right_credentials_change_nothing(
    esp_channel, webhook_secret, credentials
):
    message = sent_message("ann@example.com")
    response = Client().post(
        URL,
        postmark_bounce(message, email="ann@example.com"),
        content_type="application/json",
        **(basic_auth(credentials) if credentials else {}),
    )
    assert response.status_code == 400  # anymail checks the basic auth itself
    assert OptOut.objects.count() == 0
    assert Message.objects.get(pk=message.pk).delivery_status == ""


@pytest.mark.parametrize("record_type", ["Bounce", "SpamComplaint"])
def test_an_authenticated_bounce_suppresses_the_address_the_message_went_to(
    esp_channel, webhook_secret, record_type
):
    message = sent_message("Ann@Example.com")
    response = Client().post(
        URL,
        postmark_bounce(message, email="ann@example.com", record_type=record_type),
        content_type="application/json",
        **basic_auth(SECRET),
    )
    assert response.status_code == 200
    (optout,) = OptOut.objects.all()
    assert (optout.address, optout.channel, optout.event, optout.user) == (
        "ann@example.com",
        esp_channel,
        None,
        None,
    )
    assert Message.objects.get(pk=message.pk).delivery_status in ("bounced", "complained")
    assert "Postmark" in optout.reason


def test_a_bounce_naming_another_address_opts_nobody_out(esp_channel, webhook_secret):
    """The message id is what the ESP sent; the address in the payload is only a claim. A
    bounce of Ann's message that names Bob must not silence Bob (nor Ann)."""
    message = sent_message("ann@example.com")
    response = Client().post(
        URL,
        postmark_bounce(message, email="bob@example.com"),
        content_type="application/json",
        **basic_auth(SECRET),
    )
    assert response.status_code == 200  # the ESP must not retry it forever
    assert OptOut.objects.count() == 0
    assert Message.objects.get(pk=message.pk).delivery_status == ""
    assert notify("order-shipped", {"email": "bob@example.com"}, {"order_id": "2"}).messages


# --- the system check ------------------------------------------------------------------------

POSTMARK = {"BACKEND": "anymail.backends.postmark.EmailBackend", "OPTIONS": {}}


def tracking_errors() -> list[str]:
    return [e.id for e in run_checks() if e.id.startswith("notifier.")]


def test_an_esp_mailer_without_a_webhook_secret_stops_the_check(settings):
    settings.MAILERS = {**settings.MAILERS, "postmark": POSTMARK}
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "server-token"}
    errors = [e for e in run_checks() if e.id == "notifier.E010"]
    assert len(errors) == 1
    assert "WEBHOOK_SECRET" in errors[0].msg and "ANYMAIL_WEBHOOK_SECRET" in errors[0].hint
    assert "anymail.backends.postmark.EmailBackend" in errors[0].msg

    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "server-token", "WEBHOOK_SECRET": SECRET}
    assert "notifier.E010" not in tracking_errors()


def test_smtp_only_sites_need_no_webhook_secret(settings):
    settings.ANYMAIL = {}
    assert "notifier.E010" not in tracking_errors()
