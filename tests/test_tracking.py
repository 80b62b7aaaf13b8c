"""Email status events through django-anymail's tracking signal: the message learns what
happened, and a hard bounce or a complaint suppresses the address on that channel."""

from __future__ import annotations

import pytest
from anymail.signals import AnymailTrackingEvent, tracking

from campaigns.api import notify
from campaigns.models import Message, OptOut
from campaigns.services.dispatch import message_dispatch

from . import factories


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
