"""In-app inbox: the Message row itself is the inbox item, so sending is storing it."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from channels.backends.base import BaseBackend, Outgoing
from channels.backends.fields import INBOX_FIELDS


class InboxBackend(BaseBackend):
    key = "inbox"
    verbose_name = "In-app inbox"
    address_key = "user_id"
    template_fields = INBOX_FIELDS
    stores_messages = True
    category = "inbox"

    def validate_address(self, address: str) -> None:
        if not str(address).isdigit():
            raise ValidationError(f"inbox address must be a user id, got {address!r}")

    def send_one(self, message: Outgoing) -> str:
        return ""
