"""Push notifications through OneSignal's Create Notification API.

``POST {base_url}/notifications`` with ``Authorization: Key {api_key}`` and JSON ``app_id``,
``target_channel: "push"``, the recipient — by default its ``user_id`` as OneSignal's
``external_id`` alias (``include_aliases``), or with ``target = "subscription_id"`` the
recipient's ``onesignal_id`` (``include_subscription_ids``) — ``headings`` (the subject),
``contents`` (the text; under ``en`` and the message's language), ``url`` and ``data`` (from
``extra["url"]`` and ``extra["data"]``), and the message's UUID as ``idempotency_key``, so a
retried send never notifies twice. The notification ``id`` is stored as the provider id.

OneSignal answers errors as ``{"errors": […]}`` or ``{"errors": {"invalid_…": […]}}``:
an answer with no notification id ("All included players are not subscribed") fails the
message; an invalid subscription id raises ``AddressRejected`` (the id is deactivated;
external ids are never deactivated: they are user ids that other channels read too);
429 and 5xx retry, honouring ``Retry-After``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from django import forms
from django.core.exceptions import ValidationError

from .base import ErrorKind, Outgoing
from .fields import PUSH_FIELDS
from .http import HttpBackend, HttpConfigForm, HttpRequest

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TARGETS = {"external_id": "user_id", "subscription_id": "onesignal_id"}
INVALID_IDS = "invalid_player_ids"


class OneSignalConfigForm(HttpConfigForm):
    app_id = forms.UUIDField(help_text="The OneSignal app id.")
    api_key = forms.CharField(help_text="The app's REST API key.")
    target = forms.ChoiceField(
        required=False,
        choices=[
            ("external_id", "external id (the recipient's user_id)"),
            ("subscription_id", "subscription id (the recipient's onesignal_id)"),
        ],
        help_text="How recipients are addressed (default: external id).",
    )
    address_key = forms.CharField(
        required=False, help_text="Recipient key of the address (default: by target)."
    )

    secret_fields = ("api_key",)


class OneSignalBackend(HttpBackend):
    key = "push.onesignal"
    verbose_name = "Push (OneSignal)"
    address_key = "user_id"
    template_fields = PUSH_FIELDS
    ConfigForm = OneSignalConfigForm
    category = "push"
    default_base_url = "https://api.onesignal.com"

    @property
    def target(self) -> str:
        return self.options.get("target") or "external_id"

    def recipient_key(self) -> str | None:
        return self.options.get("address_key") or TARGETS[self.target]

    def validate_address(self, address: str) -> None:
        if self.target == "subscription_id" and not UUID.match(address):
            raise ValidationError(f"{address!r} is not a OneSignal subscription id (a UUID)")

    def client_options(self) -> dict[str, Any]:
        return {"headers": {"Authorization": f"Key {self.options['api_key']}"}}

    def payload(self, message: Outgoing) -> dict[str, Any]:
        languages = {"en", message.language.split("-")[0]} - {""}
        data: dict[str, Any] = {
            "app_id": str(self.options["app_id"]),
            "target_channel": "push",
            "contents": dict.fromkeys(sorted(languages), message.text or message.subject),
            "data": {"notifier_id": message.uuid, "event": message.event_key},
            # OneSignal has asked for a v3 or v4 UUID here; a message's UUID is a v7 one. Its
            # version bits are the same in every message, so setting them to 4 keeps it unique.
            "idempotency_key": str(uuid.UUID(message.uuid, version=4)),
        }
        if self.target == "subscription_id":
            data["include_subscription_ids"] = [message.address]
        else:
            data["include_aliases"] = {"external_id": [message.address]}
        if message.subject:
            data["headings"] = dict.fromkeys(sorted(languages), message.subject)
        if message.link:
            data["url"] = message.link
        elif isinstance(message.extra.get("url"), str):
            data["url"] = message.extra["url"]
        if message.image:  # Android's big picture, the web's image, iOS's attachment
            data["big_picture"] = data["chrome_web_image"] = message.image
            data["ios_attachments"] = {"image": message.image}
        if isinstance(message.extra.get("data"), dict):
            data["data"] |= message.extra["data"]
        return data

    def request(self, message: Outgoing) -> HttpRequest:
        return HttpRequest(
            "POST", f"{self.base_url}/notifications", {"json": self.payload(message)}
        )

    def parse(self, response: httpx.Response, answer: Any, message: Outgoing) -> str:
        if (
            response.is_success
            and isinstance(answer, dict)
            and answer.get("id")
            and not _invalid_ids(answer)
        ):
            return str(answer["id"])
        raise self.error(response, answer)

    def provider_code(self, response: httpx.Response, answer: Any) -> tuple[Any, str]:
        errors = answer.get("errors") if isinstance(answer, dict) else None
        detail = describe(errors) if errors else ""
        if not response.is_success or not isinstance(answer, dict):
            return None, self.http_text(response, detail)
        if _invalid_ids(answer):
            return INVALID_IDS, f"{self.verbose_name}: {detail}"
        return None, (
            f"{self.verbose_name}: no notification created: {detail or response.text[:500]}"
        )

    def error_kind(self, code: Any, response: httpx.Response, answer: Any) -> ErrorKind:
        """Invalid subscription ids are dead; external ids never are: they are user ids that
        other channels read too."""
        if code == INVALID_IDS:
            return "dead" if self.target == "subscription_id" else "permanent"
        return super().error_kind(code, response, answer)


def _invalid_ids(answer: dict[str, Any]) -> bool:
    errors = answer.get("errors")
    return isinstance(errors, dict) and bool(errors.get(INVALID_IDS))


def describe(errors: Any) -> str:
    if isinstance(errors, list):
        return "; ".join(str(e) for e in errors)
    if isinstance(errors, dict):
        return "; ".join(f"{name}: {value}" for name, value in errors.items())
    return str(errors)
