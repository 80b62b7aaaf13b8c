"""What the message page shows: a message's content as sent, its attempts, and what happened
around it — reads only."""

from __future__ import annotations

from dataclasses import dataclass

from campaigns.domain.states import ACTIVE
from campaigns.models import Message, MessageAttempt
from campaigns.outbox.actions import CANCELLABLE, REQUEUABLE
from campaigns.support.timeline import BAD_DELIVERY, BADGES


@dataclass(slots=True)
class Content:
    subject: str
    text: str
    html: str
    #: False while the message was not rendered yet (it renders when it is sent).
    rendered: bool


def message_content(message: Message) -> Content:
    """The message as it was sent: the subject, text and HTML dispatch rendered and kept on
    the row. This is the one place that says where a message's content comes from (to render
    it from its template's version instead, change this function)."""
    rendered = bool(message.subject or message.text or message.html)
    return Content(message.subject, message.text, message.html, rendered)


@dataclass(slots=True)
class Summary:
    """The essentials on top of the message page."""

    message: Message
    attempts: list[MessageAttempt]
    badge: str
    active: bool
    can_resend: bool
    can_cancel: bool
    delivery_bad: bool


def message_summary(message: Message) -> Summary:
    """Status, attempts and what may be done with it now: one query (the attempts)."""
    return Summary(
        message=message,
        attempts=list(message.attempt_log.order_by("number", "id")),
        badge=BADGES.get(message.status, "info"),
        active=message.status in ACTIVE,
        can_resend=message.status in REQUEUABLE,
        can_cancel=message.status in CANCELLABLE,
        delivery_bad=message.delivery_status in BAD_DELIVERY,
    )


__all__ = ["Content", "Summary", "message_content", "message_summary"]
