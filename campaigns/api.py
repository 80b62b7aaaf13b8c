"""The public API for developers of the host site.

from campaigns.api import notify

notify("order-shipped", request.user, {"order_id": order.number})
notify_text(request.user, subject="About your order", text="It left today.", channels=["email"])
"""

from campaigns.exceptions import (
    DuplicateNotification,
    IdempotencyConflict,
    InvalidArgument,
    InvalidContext,
    InvalidRecipient,
    MissingVariables,
    NotifierError,
    UnknownChannel,
    UnknownEvent,
    UnknownTemplate,
)
from campaigns.outbox.adhoc import notify_text
from campaigns.outbox.notify import notify, send_template
from campaigns.outbox.plan import NotifyResult, Skipped
from campaigns.outbox.selectors import messages_for_content, messages_for_user

__all__ = [
    "DuplicateNotification",
    "IdempotencyConflict",
    "InvalidArgument",
    "InvalidContext",
    "InvalidRecipient",
    "MissingVariables",
    "NotifierError",
    "NotifyResult",
    "Skipped",
    "UnknownChannel",
    "UnknownEvent",
    "UnknownTemplate",
    "messages_for_content",
    "messages_for_user",
    "notify",
    "notify_text",
    "send_template",
]
