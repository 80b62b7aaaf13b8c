"""Posts to a VK wall through the VK API's ``wall.post``.

``POST {base_url}/method/wall.post`` with the form fields ``owner_id`` (the address: a
community's id is negative, a user's positive), ``message`` (the text), ``attachments``
(``extra["attachments"]``, a list or a comma-separated string such as ``photo-1_2``, then
``extra["link"]`` or ``extra["url"]``), ``from_group=1`` on a community wall (post as the
community, unless ``post_as_user``), ``access_token`` (in the body, never in a URL) and
``v`` (``api_version``, default 5.199). The address is the recipient's ``vk_owner``, or the
channel's ``owner_id``.

VK answers HTTP 200 either way: ``{"response": {"post_id": N}}`` (``{owner_id}_{post_id}``
is stored, as VK names wall posts) or ``{"error": {"error_code", "error_msg"}}``: 6 (too many
requests per second), 9 (flood control), 10 (internal error), 1 (unknown) and 29 (rate limit
reached) are retried; 5 (authorization failed) fails and names ``access_token``; 15 and 214
(access denied, posting forbidden) and every other code fail the message with VK's text.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from .base import Outgoing
from .http import HttpRequest
from .social import SocialBackend, SocialConfigForm

OWNER_ID = re.compile(r"^-?[1-9]\d{0,19}$")
API_VERSION = re.compile(r"^\d{1,2}\.\d{1,3}$")
DEFAULT_API_VERSION = "5.199"


def validate_owner_id(address: str) -> None:
    if not OWNER_ID.match(address):
        raise ValidationError(
            f"{address!r} is not a VK wall owner id (a number: negative for a community, "
            "e.g. -123456)"
        )


class VkConfigForm(SocialConfigForm):
    access_token = forms.CharField(
        help_text="A community token (or a user token) allowed to post on the wall (wall scope)."
    )
    owner_id = forms.CharField(
        required=False,
        max_length=21,
        help_text="The wall to post to when the recipient names none: -community id, or a "
        "user id (the default target).",
    )
    post_as_user = forms.BooleanField(
        required=False,
        help_text="On a community wall, post as the token's user instead of the community.",
    )
    api_version = forms.CharField(
        required=False,
        validators=[RegexValidator(API_VERSION, "a VK API version such as 5.199")],
        help_text=f"VK API version (default {DEFAULT_API_VERSION}).",
    )

    secret_fields = ("access_token",)
    target_field = "owner_id"
    target_validator = staticmethod(validate_owner_id)


class VkWallBackend(SocialBackend):
    key = "social.vk"
    verbose_name = "VK wall"
    address_key = "vk_owner"
    ConfigForm = VkConfigForm
    default_base_url = "https://api.vk.com"
    target_option = "owner_id"
    #: VK answers HTTP 200 with an error code: 1 unknown, 6 too many requests per second,
    #: 9 flood control, 10 internal error, 29 rate limit reached. Others (15 and 214: access
    #: denied, posting forbidden) fail the message.
    errors = dict.fromkeys((1, 6, 9, 10, 29), "transient")
    hints = {5: "renew the channel's access_token"}  # authorization failed

    def validate_address(self, address: str) -> None:
        validate_owner_id(address)

    def attachments(self, message: Outgoing) -> str:
        value = message.extra.get("attachments")
        if isinstance(value, str):
            items = value.split(",")
        elif isinstance(value, list):
            items = [str(item) for item in value]
        else:
            items = []
        link = self.post_link(message)
        items = [item.strip() for item in [*items, link] if item and item.strip()]
        return ",".join(dict.fromkeys(items))

    def payload(self, message: Outgoing) -> dict[str, str]:
        data = {
            "owner_id": message.address,
            "message": self.post_text(message),
            "access_token": self.options["access_token"],
            "v": self.options.get("api_version") or DEFAULT_API_VERSION,
        }
        if message.address.startswith("-") and not self.options.get("post_as_user"):
            data["from_group"] = "1"
        attachments = self.attachments(message)
        if attachments:
            data["attachments"] = attachments
        return data

    def request(self, message: Outgoing) -> HttpRequest:
        data = self.payload(message)
        self.require_text(data["message"], link=data.get("attachments", ""))
        return HttpRequest("POST", f"{self.base_url}/method/wall.post", {"data": data})

    def parse(self, response: httpx.Response, answer: Any, message: Outgoing) -> str:
        result = answer.get("response") if isinstance(answer, dict) else None
        if response.is_success and isinstance(result, dict) and result.get("post_id"):
            return f"{message.address}_{result['post_id']}"
        raise self.error(response, answer)

    def provider_code(self, response: httpx.Response, answer: Any) -> tuple[Any, str]:
        if not response.is_success or not isinstance(answer, dict):
            return None, self.http_text(response)
        error = answer.get("error")
        if not isinstance(error, dict):
            return None, f"VK: unexpected answer: {response.text[:500]}"
        code = error.get("error_code")
        return code, f"VK {code}: {error.get('error_msg', '')}"
