"""Slack, through an incoming webhook or a bot token's ``chat.postMessage``.

Set exactly one of

- ``webhook_url`` (an incoming webhook, ``https://hooks.slack.com/services/T…/B…/…``): every
  message goes to the webhook's own channel, POSTed as JSON ``{"text": …}``; Slack answers
  ``ok`` (no message id) or an error word: ``invalid_payload``, ``no_text``,
  ``channel_not_found``, ``channel_is_archived`` … fail the message; 429 (``Retry-After``)
  and 5xx retry. The address only says who the message is about: by default the
  recipient's ``user_id`` (``address_key`` picks another key);
- ``bot_token`` (``xoxb-…``): ``POST {base_url}/chat.postMessage`` with JSON ``channel`` (the
  recipient's ``slack_id``: a user id ``U…`` for a direct message, or a channel id ``C…``)
  and ``text``; the provider id is ``{channel}/{ts}``. Slack answers HTTP 200 with
  ``{"ok": false, "error": …}``: ``ratelimited`` and server errors retry (HTTP 429 carries
  ``Retry-After``), ``is_archived`` deactivates the address, other errors fail the message.

The webhook URL is a secret, like the token: both are masked, and kept out of error texts
and httpx's log lines.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .base import AddressRejected, DeliveryError, Outgoing, PermanentError, TransientError
from .http import HttpBackend, HttpConfigForm, redact_in_logs, response_json, response_text

SLACK_ID = re.compile(r"^[CDGUW][A-Z0-9]{6,20}$")
#: chat.postMessage errors worth retrying.
TRANSIENT_ERRORS = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}
#: chat.postMessage errors that mean the address is dead.
DEAD_ADDRESS_ERRORS = {"is_archived"}

redact_in_logs(r"/services/(?P<secret>[^\s\"']+)")


class SlackConfigForm(HttpConfigForm):
    webhook_url = forms.URLField(
        required=False,
        assume_scheme="https",
        max_length=500,
        help_text="An incoming webhook URL (https://hooks.slack.com/services/…).",
    )
    bot_token = forms.CharField(
        required=False, help_text="A bot token (xoxb-…) with the chat:write scope."
    )
    address_key = forms.CharField(
        required=False,
        help_text="Recipient key of the address (default: slack_id with a bot token, "
        "user_id with a webhook).",
    )

    secret_fields = ("webhook_url", "bot_token")

    def clean_bot_token(self) -> str:
        token = self.cleaned_data["bot_token"].strip()
        if token and not token.startswith(("xoxb-", "xoxp-")):
            raise ValidationError("a Slack token: xoxb-… (bot) or xoxp-… (user)")
        return token

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if bool(data.get("webhook_url")) == bool(data.get("bot_token")):
            raise ValidationError("set either webhook_url or bot_token")
        return data


class SlackBackend(HttpBackend):
    key = "chat.slack"
    verbose_name = "Slack"
    address_key = "slack_id"
    template_fields = ("text",)
    ConfigForm = SlackConfigForm
    category = "chat"
    default_base_url = "https://slack.com/api"

    @property
    def uses_webhook(self) -> bool:
        return bool(self.options.get("webhook_url"))

    def recipient_key(self) -> str | None:
        default = "user_id" if self.uses_webhook else "slack_id"
        return self.options.get("address_key") or default

    def validate_address(self, address: str) -> None:
        if self.recipient_key() == "slack_id" and not SLACK_ID.match(address):
            raise ValidationError(f"{address!r} is not a Slack user or channel id (U…, C…, G…, D…)")

    def client_options(self) -> dict[str, Any]:
        if self.uses_webhook:
            return {}
        return {"headers": {"Authorization": f"Bearer {self.options['bot_token']}"}}

    def send_one(self, message: Outgoing) -> str:
        text = message.text or message.subject
        if self.uses_webhook:
            return self.send_webhook(text)
        return self.send_bot(message.address, text)

    def send_webhook(self, text: str) -> str:
        response = self.post(self.options["webhook_url"], json={"text": text})
        if response.is_success:
            return ""
        raise self.error_for_status(response)

    def send_bot(self, channel: str, text: str) -> str:
        response = self.post(
            f"{self.base_url}/chat.postMessage", json={"channel": channel, "text": text}
        )
        answer = response_json(response)
        if not isinstance(answer, dict):
            raise self.error_for_status(response)
        if answer.get("ok"):
            return f"{answer.get('channel', channel)}/{answer.get('ts', '')}"
        raise self.api_error(response, answer)

    def api_error(self, response, answer: dict[str, Any]) -> DeliveryError:
        error = answer.get("error") or response_text(response)
        detail = f"{self.verbose_name} chat.postMessage: {error}"
        if response.status_code == 429 or response.status_code >= 500:
            return self.error_for_status(response, error)
        if error in TRANSIENT_ERRORS:
            return TransientError(detail)
        if error in DEAD_ADDRESS_ERRORS:
            return AddressRejected(detail)
        return PermanentError(detail)
