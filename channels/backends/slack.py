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

import httpx
from django import forms
from django.core.exceptions import ValidationError

from .base import Outgoing
from .fields import CHAT_FIELDS
from .http import HttpBackend, HttpConfigForm, HttpRequest, redact_in_logs, response_text

SLACK_ID = re.compile(r"^[CDGUW][A-Z0-9]{6,20}$")
#: chat.postMessage errors worth retrying, and those that mean the address is dead.
ERRORS = {
    **dict.fromkeys(
        (
            "ratelimited",
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
        ),
        "transient",
    ),
    "is_archived": "dead",
}

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
    template_fields = (
        CHAT_FIELDS[0].but(
            max_length=40000,  # Slack cuts longer text
            markup="Slack mrkdwn",
            help="Slack mrkdwn: *bold*, _italic_, ~strike~, `code`, and links as "
            "&lt;https://example.com|words&gt;.",
        ),
    )
    ConfigForm = SlackConfigForm
    category = "chat"
    default_base_url = "https://slack.com/api"
    errors = ERRORS

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

    def request(self, message: Outgoing) -> HttpRequest:
        text = message.text or message.subject
        if self.uses_webhook:
            return HttpRequest("POST", self.options["webhook_url"], {"json": {"text": text}})
        payload = {"channel": message.address, "text": text}
        return HttpRequest("POST", f"{self.base_url}/chat.postMessage", {"json": payload})

    def parse(self, response: httpx.Response, answer: Any, message: Outgoing) -> str:
        if self.uses_webhook and response.is_success:
            return ""  # a webhook answers "ok", with no message id
        if isinstance(answer, dict) and answer.get("ok"):
            return f"{answer.get('channel', message.address)}/{answer.get('ts', '')}"
        raise self.error(response, answer)

    def provider_code(self, response: httpx.Response, answer: Any) -> tuple[Any, str]:
        if not isinstance(answer, dict):  # a webhook's errors are plain text
            return None, self.http_text(response)
        error = answer.get("error") or response_text(response)
        if response.status_code == 429 or response.status_code >= 500:
            return error, self.http_text(response, error)
        return error, f"{self.verbose_name} chat.postMessage: {error}"
