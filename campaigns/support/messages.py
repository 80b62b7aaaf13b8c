"""What the message page shows: a message's content as sent, its attempts, and what happened
around it — reads only."""

from __future__ import annotations

from dataclasses import dataclass, field

from campaigns.domain.states import ACTIVE
from campaigns.models import DigestItem, Message, MessageAttempt, MessageStatus
from campaigns.outbox.actions import CANCELLABLE, REQUEUABLE
from campaigns.outbox.dispatch import message_content as content_made_again
from campaigns.support.timeline import BAD_DELIVERY, BADGES


@dataclass(slots=True)
class Content:
    subject: str
    text: str
    html: str
    #: False when there is nothing to show (its template version is gone, or fails to render).
    rendered: bool
    #: True when the bodies were made again from the template (the row keeps only an inbox
    #: message's bodies); their links are signed anew.
    remade: bool = False
    #: False for a message not tried yet: its content is how its version renders it now.
    sent: bool = True
    #: The retention dropped its content (``RETENTION_MODE = "content"``): nothing to show.
    dropped: bool = False


def message_content(message: Message) -> Content:
    """The message as it was sent. An inbox message keeps its subject, text and HTML on its
    row; any other keeps its subject, and its bodies are made again from the template version
    it was made with (links signed anew); a message not sent yet shows how that version
    renders it. One whose content the retention dropped shows nothing (its context is gone:
    rendering again would show something that was never sent)."""
    if message.content_dropped_at is not None:
        return Content("", "", "", rendered=False, dropped=True)
    if message.text or message.html:
        return Content(message.subject, message.text, message.html, rendered=True)
    subject, text, html = content_made_again(message)
    return Content(
        subject,
        text,
        html,
        rendered=bool(subject or text or html),
        remade=True,
        sent=bool(message.attempts or message.sent_at),
    )


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
    #: A digest's occurrences, oldest first (empty for any other message).
    digest_items: list[DigestItem] = field(default_factory=list)


def message_summary(message: Message) -> Summary:
    """Status, attempts and what may be done with it now: one query (the attempts), and one
    more for a digest's items."""
    attempts = list(message.attempt_log.order_by("id"))
    last = attempts[-1] if attempts else None
    if message.status == MessageStatus.SENT and (last is None or last.status != "sent"):
        # A first try that was sent (of a message, or of a message sent again) is not logged
        # apart: the message itself says it all.
        attempts.append(
            MessageAttempt(
                message=message,
                number=message.attempts,
                status=MessageStatus.SENT,
                provider_id=message.provider_id,
                at=message.sent_at,
            )
        )
    return Summary(
        message=message,
        attempts=attempts,
        badge=BADGES.get(message.status, "info"),
        active=message.status in ACTIVE,
        can_resend=message.status in REQUEUABLE,
        can_cancel=message.status in CANCELLABLE,
        delivery_bad=message.delivery_status in BAD_DELIVERY,
        digest_items=list(message.digest_items.order_by("created_at", "id"))
        if message.digest_key
        else [],
    )


__all__ = ["Content", "Summary", "message_content", "message_summary"]
