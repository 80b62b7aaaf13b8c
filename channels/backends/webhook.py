"""Webhook: POSTs each message as JSON to one URL, signed with HMAC-SHA256.

Every request carries

- ``X-Notifier-Timestamp``: the Unix time of the send, in seconds;
- ``X-Notifier-Signature``: ``v1=`` and the hex HMAC-SHA256, keyed with the channel's
  ``secret``, of ``"{timestamp}.{body}"`` (the raw body bytes);
- ``X-Notifier-Message-Id``: the message's UUID, the same on every retry (deduplicate on it).

A 2xx answer means sent (a JSON answer's ``id`` is stored as the provider id); 408, 425, 429
and 5xx answers and timeouts are retried, honouring ``Retry-After``; any other answer fails
the message with the receiver's text. Redirects are not followed. Receivers verify requests
with the snippet in ``docs/adding-a-channel.md``.

The URL belongs to the channel, so the recipient's "address" only says who the message is
for: by default the recipient's ``user_id`` (recipients without one are skipped); set
``address_key`` to use another recipient key (``email``, ``account_id`` …).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from django import forms

from .base import BaseConfigForm, Outgoing
from .http import HttpBackend, HttpRequest

SIGNATURE_VERSION = "v1"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Notifier-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={digest.hexdigest()}"


class WebhookConfigForm(BaseConfigForm):
    url = forms.URLField(assume_scheme="https", help_text="Where each message is POSTed as JSON.")
    secret = forms.CharField(
        min_length=16,
        help_text="Shared with the receiver; signs every request (HMAC-SHA256). "
        "At least 16 characters.",
    )
    timeout = forms.FloatField(
        required=False, min_value=0.1, max_value=120, help_text="Seconds; default 10."
    )
    address_key = forms.CharField(
        required=False,
        help_text="Recipient key that says who a message is for (default: user_id).",
    )

    secret_fields = ("secret",)


class WebhookBackend(HttpBackend):
    key = "webhook"
    verbose_name = "Webhook"
    address_key = "user_id"
    template_fields = ("subject", "text", "html")
    ConfigForm = WebhookConfigForm
    category = "webhook"

    def payload(self, message: Outgoing) -> dict[str, Any]:
        return {
            "id": message.uuid,
            "event": message.event_key,
            "address": message.address,
            "recipient": message.recipient,
            "language": message.language,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "extra": message.extra,
        }

    def request(self, message: Outgoing) -> HttpRequest:
        body = json.dumps(
            self.payload(message), ensure_ascii=False, separators=(",", ":"), default=str
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Notifier-Timestamp": timestamp,
            "X-Notifier-Signature": signature(self.options["secret"], timestamp, body),
            "X-Notifier-Message-Id": message.uuid,
        }
        return HttpRequest("POST", self.options["url"], {"content": body, "headers": headers})
