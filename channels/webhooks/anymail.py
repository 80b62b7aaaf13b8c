"""Email tracking events from django-anymail (the ESP's webhooks, which anymail's views
authenticate before they send its ``tracking`` signal) as delivery events."""

from __future__ import annotations

from anymail.signals import AnymailTrackingEvent

from .base import DeliveryEvent

#: anymail's event types that say something about a sent message (the others — inbound
#: mail, autoresponders, subscriptions, "unknown" — do not).
RECORDED = frozenset(
    {
        "queued",
        "sent",
        "delivered",
        "deferred",
        "bounced",
        "rejected",
        "failed",
        "complained",
        "opened",
        "clicked",
        "unsubscribed",
    }
)
#: The events after which nothing more may go to the address on that channel.
SUPPRESSING = frozenset({"bounced", "complained"})


def anymail_event(event: AnymailTrackingEvent, esp_name: str) -> DeliveryEvent | None:
    """The delivery event of an anymail tracking event, or None when it says nothing about a
    sent message (another type, or no message id). ESPs do not name the channel: the
    provider id does; the recipient they name is kept in ``address``, to be checked."""
    event_type = str(event.event_type or "")
    message_id = str(event.message_id or "")
    if event_type not in RECORDED or not message_id:
        return None
    return DeliveryEvent(
        channel_key="",
        provider_id=message_id,
        status=event_type,
        reason=str(event.description or event.mta_response or ""),
        suppress=event_type in SUPPRESSING,
        at=event.timestamp,
        esp=esp_name,
        raw_type=event_type,
        address=str(event.recipient or ""),
    )
