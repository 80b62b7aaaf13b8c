"""Email status events from django-anymail's tracking signal (the ESP's webhooks): they update
the message they are about, and a hard bounce or a complaint suppresses the address on that
channel, so the next notify() skips it."""

from __future__ import annotations

import datetime as dt
import logging

from django.utils import timezone

from campaigns.models import Message, OptOut

logger = logging.getLogger("notifier.tracking")

#: anymail event types we record, and those that suppress the address.
RECORDED = {
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
SUPPRESSING = {"bounced", "complained"}


def email_event_record(
    *,
    message_id: str,
    event_type: str,
    recipient: str = "",
    esp_name: str = "",
    description: str = "",
    timestamp: dt.datetime | None = None,
) -> Message | None:
    """Record one provider event about the message the ESP knows as ``message_id``; returns
    the message, or None when no message has that id or the event names another address.

    A bounce or a complaint suppresses the address the message was sent to (the row's),
    never one taken from the payload: ``recipient`` only has to agree with it."""
    if event_type not in RECORDED or not message_id:
        return None
    message = (
        Message.objects.select_related("channel")
        .filter(provider_id__in={message_id, f"<{message_id.strip('<>')}>"})
        .order_by("-id")
        .first()
    )
    if message is None:
        logger.info("tracking event %s for unknown message id %s", event_type, message_id)
        return None
    address = message.address.strip().lower()
    if recipient and recipient.strip().lower() != address:
        logger.warning(
            "tracking event %s for message %s names another recipient: ignored",
            event_type,
            message.pk,
        )
        return None
    message.delivery_status = event_type
    message.delivery_updated_at = timestamp or timezone.now()
    message.save(update_fields=["delivery_status", "delivery_updated_at", "updated_at"])
    if event_type in SUPPRESSING:
        OptOut.objects.get_or_create(
            address=address,
            user=None,
            event=None,
            channel=message.channel,
            marketing=False,
            defaults={"reason": f"{event_type} ({esp_name or 'provider'}): {description}"[:255]},
        )
    return message


def anymail_tracking_receive(sender, event, esp_name, **kwargs) -> None:
    """The receiver connected to ``anymail.signals.tracking``: anymail's webhook views send
    it after checking the ESP's credentials (``campaigns.tracking.urls``)."""
    email_event_record(
        message_id=str(event.message_id or ""),
        event_type=str(event.event_type or ""),
        recipient=event.recipient or "",
        esp_name=esp_name,
        description=event.description or event.mta_response or "",
        timestamp=event.timestamp,
    )
