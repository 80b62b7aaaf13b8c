"""Webhook: POSTs each message as JSON to one URL, signed per the Standard Webhooks
specification (https://www.standardwebhooks.com/), by the ``standardwebhooks`` package.

Every request carries

- ``webhook-id``: the message's UUID, the same on every retry (deduplicate on it);
- ``webhook-timestamp``: the Unix time of the send, in seconds;
- ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256 of
  ``"{webhook-id}.{webhook-timestamp}.{body}"``, keyed with the channel's ``secret``.

The secret is a Standard Webhooks secret, ``whsec_`` + base64 of the key (at least 16
bytes), or any other string of at least 16 characters, whose UTF-8 bytes are the key (its
``whsec_`` form is ``"whsec_" + base64(secret)``). Any Standard Webhooks library verifies
the requests (the receiver side is in ``docs/adding-a-channel.md``).

A 2xx answer means sent (a JSON answer's ``id`` is stored as the provider id); 408, 425, 429
and 5xx answers and timeouts are retried, honouring ``Retry-After``; any other answer fails
the message with the receiver's text. Redirects are not followed.

The URL belongs to the channel, so the recipient's "address" only says who the message is
for: by default the recipient's ``user_id`` (recipients without one are skipped); set
``address_key`` to use another recipient key (``email``, ``account_id`` …).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from standardwebhooks.webhooks import Webhook

from .base import BaseConfigForm, Outgoing
from .fields import WEBHOOK_FIELDS
from .http import HttpBackend, HttpRequest

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
MIN_KEY_BYTES = 16


def signing_key(secret: str) -> bytes:
    """The HMAC key of a channel's ``secret``: the base64 after ``whsec_``, else the secret's
    UTF-8 bytes. ValueError naming the problem when a ``whsec_`` secret is not base64."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "a whsec_ secret is whsec_ followed by the key in base64 (A-Z, a-z, 0-9, +, /)"
        ) from None


class WebhookConfigForm(BaseConfigForm):
    url = forms.URLField(assume_scheme="https", help_text="Where each message is POSTed as JSON.")
    secret = forms.CharField(
        min_length=16,
        help_text="Shared with the receiver; signs every request (Standard Webhooks, "
        "HMAC-SHA256): whsec_ + a base64 key, or any string of at least 16 characters.",
    )
    timeout = forms.FloatField(
        required=False, min_value=0.1, max_value=120, help_text="Seconds; default 10."
    )
    address_key = forms.CharField(
        required=False,
        help_text="Recipient key that says who a message is for (default: user_id).",
    )

    secret_fields = ("secret",)

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"]
        try:
            key = signing_key(secret)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        if len(key) < MIN_KEY_BYTES:
            raise ValidationError(
                f"the key of a whsec_ secret must be at least {MIN_KEY_BYTES} bytes "
                f"(this one has {len(key)})"
            )
        return secret


class WebhookBackend(HttpBackend):
    key = "webhook"
    verbose_name = "Webhook"
    address_key = "user_id"
    template_fields = WEBHOOK_FIELDS
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
            "body": message.body,  # the template's JSON body, as a JSON value
            "extra": message.extra,
        }

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.signer = Webhook(signing_key(self.options["secret"]))

    def request(self, message: Outgoing) -> HttpRequest:
        body = json.dumps(
            self.payload(message), ensure_ascii=False, separators=(",", ":"), default=str
        )
        now = dt.datetime.now(dt.UTC)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message.uuid,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(message.uuid, now, body),
        }
        return HttpRequest(
            "POST", self.options["url"], {"content": body.encode(), "headers": headers}
        )
