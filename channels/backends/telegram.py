"""Telegram through the Bot API's ``sendMessage``.

``POST {base_url}/bot{bot_token}/sendMessage`` with JSON ``chat_id`` and ``text`` (and
``parse_mode``, ``disable_notification``, ``link_preview_options`` when set). The address is
the recipient's ``chat_id`` (a user, group or channel id, or ``@channelusername``); the
message's ``message_id`` is stored as the provider id.

Telegram answers ``{"ok": false, "error_code": …, "description": …, "parameters": …}``:
429 is retried after ``parameters.retry_after``; 403 (the bot was blocked, kicked, or the user
deactivated) raises ``AddressRejected`` and deactivates the chat id; other 4xx (``chat not
found``, bad markup, a wrong token) fail the message; 5xx and timeouts are retried.
The bot token travels in the URL: it is kept out of error texts and httpx's log lines.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from .base import Outgoing
from .fields import CHAT_FIELDS
from .http import HttpBackend, HttpConfigForm, HttpRequest, redact_in_logs, retry_after_seconds

CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$")
BOT_TOKEN_FORMAT = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{30,64}$")

redact_in_logs(r"/bot(?P<secret>[^/\s]+)/")


class TelegramConfigForm(HttpConfigForm):
    bot_token = forms.CharField(
        validators=[RegexValidator(BOT_TOKEN_FORMAT, "a bot token from @BotFather: 123456:ABC-…")],
        help_text="The bot's token, from @BotFather.",
    )
    parse_mode = forms.ChoiceField(
        required=False,
        choices=[("", "plain text"), ("HTML", "HTML"), ("MarkdownV2", "MarkdownV2")],
        help_text="How Telegram formats the text (default: plain text).",
    )
    disable_notification = forms.BooleanField(
        required=False, help_text="Deliver silently (no sound)."
    )
    disable_link_preview = forms.BooleanField(
        required=False, help_text="No preview of the first link in the text."
    )

    secret_fields = ("bot_token",)


class TelegramBackend(HttpBackend):
    key = "chat.telegram"
    verbose_name = "Telegram"
    address_key = "chat_id"
    template_fields = (
        CHAT_FIELDS[0].but(
            max_length=4096,  # sendMessage's limit
            markup="Telegram",
            help="Plain text, or Telegram's HTML (the b, i, a and code tags) or MarkdownV2 "
            "when the channel's parse_mode option says so.",
        ),
    )
    ConfigForm = TelegramConfigForm
    category = "chat"
    default_base_url = "https://api.telegram.org"
    #: Telegram's error codes are HTTP statuses; 403: the bot was blocked or kicked, or the
    #: user deactivated.
    errors = {403: "dead"}

    def validate_address(self, address: str) -> None:
        if not CHAT_ID.match(address):
            raise ValidationError(
                f"{address!r} is not a Telegram chat id (a number, or @channelusername)"
            )

    def payload(self, message: Outgoing) -> dict[str, Any]:
        address = message.address
        data: dict[str, Any] = {
            "chat_id": int(address) if address.lstrip("-").isdigit() else address,
            "text": message.text or message.subject,
        }
        if self.options.get("parse_mode"):
            data["parse_mode"] = self.options["parse_mode"]
        if self.options.get("disable_notification"):
            data["disable_notification"] = True
        if self.options.get("disable_link_preview"):
            data["link_preview_options"] = {"is_disabled": True}
        return data

    def request(self, message: Outgoing) -> HttpRequest:
        url = f"{self.base_url}/bot{self.options['bot_token']}/sendMessage"
        return HttpRequest("POST", url, {"json": self.payload(message)})

    def parse(self, response: httpx.Response, answer: Any, message: Outgoing) -> str:
        if response.is_success and isinstance(answer, dict) and answer.get("ok"):
            return str(answer["result"]["message_id"])
        raise self.error(response, answer)

    def provider_code(self, response: httpx.Response, answer: Any) -> tuple[Any, str]:
        if not isinstance(answer, dict):
            return None, self.http_text(response)
        code = answer.get("error_code") or response.status_code
        description = answer.get("description", "")
        parameters = answer.get("parameters") or {}
        if parameters.get("migrate_to_chat_id"):
            description += f" (the group is now chat {parameters['migrate_to_chat_id']})"
        return code, f"{self.verbose_name} {code}: {description}"

    def retry_after(self, response: httpx.Response, answer: Any) -> float | None:
        """Telegram says how long to wait in the body (``parameters.retry_after``)."""
        parameters = (answer.get("parameters") if isinstance(answer, dict) else None) or {}
        seconds = retry_after_seconds(parameters.get("retry_after"))
        return seconds if seconds is not None else super().retry_after(response, answer)
