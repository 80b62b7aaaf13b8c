"""Posts to a Facebook Page's feed through the Graph API.

``POST {base_url}/{api_version}/{page-id}/feed`` with the form fields ``message`` (the text),
``link`` (``extra["link"]`` or ``extra["url"]``, when given), ``access_token`` (the Page access
token, in the body so it never appears in a URL) and, when ``app_secret`` is set,
``appsecret_proof`` (HMAC-SHA256 of the token, for apps that require it). The token needs the
``pages_manage_posts`` permission. The address is the Page id: the recipient's
``facebook_page``, or the channel's ``page_id``.

The Graph API answers ``{"id": "{page-id}_{post-id}"}`` (stored as the provider id) or
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``: codes 4, 17, 32,
613 (rate limits) and 1, 2 (temporary) are retried, after the time the usage headers give;
190 (invalid or expired token) fails and names ``page_access_token``; 10 and 200-299
(permissions) fail; other errors fail too, unless the answer is a 5xx (retried).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import httpx
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from .base import ErrorKind, Outgoing
from .http import MAX_RETRY_AFTER, HttpRequest, retry_after_seconds
from .social import SocialBackend, SocialConfigForm

PAGE_ID = re.compile(r"^\d{1,30}$")
API_VERSION = re.compile(r"^v\d{1,3}\.\d{1,2}$")
DEFAULT_API_VERSION = "v24.0"
#: Graph API error codes: rate limits (4, 17, 32, 613) and temporary errors (1, 2) are
#: retried; an invalid token (190) and missing permissions (10, 200-299) fail the message with
#: what to fix. Other codes go by the HTTP status.
ERRORS = {
    **dict.fromkeys((4, 17, 32, 613, 1, 2), "transient"),
    **dict.fromkeys((190, 10, *range(200, 300)), "permanent"),
}
PERMISSION_HINT = "the page_access_token lacks a permission or task"
HINTS = {
    190: "renew the channel's page_access_token",
    **dict.fromkeys((10, *range(200, 300)), PERMISSION_HINT),
}


def validate_page_id(address: str) -> None:
    if not PAGE_ID.match(address):
        raise ValidationError(f"{address!r} is not a Facebook Page id (a number)")


class FacebookConfigForm(SocialConfigForm):
    page_access_token = forms.CharField(
        help_text="A Page access token with pages_manage_posts (a long-lived one, or a system "
        "user's)."
    )
    page_id = forms.CharField(
        required=False,
        max_length=30,
        help_text="The Page to post to when the recipient names none (the default target).",
    )
    app_secret = forms.CharField(
        required=False,
        help_text="The app's secret, when the app requires appsecret_proof on every call.",
    )
    api_version = forms.CharField(
        required=False,
        validators=[RegexValidator(API_VERSION, "a Graph API version such as v24.0")],
        help_text=f"Graph API version (default {DEFAULT_API_VERSION}).",
    )

    secret_fields = ("page_access_token", "app_secret")
    target_field = "page_id"
    target_validator = staticmethod(validate_page_id)


class FacebookPageBackend(SocialBackend):
    key = "social.facebook"
    verbose_name = "Facebook Page"
    address_key = "facebook_page"
    ConfigForm = FacebookConfigForm
    default_base_url = "https://graph.facebook.com"
    target_option = "page_id"
    errors = ERRORS
    hints = HINTS

    def validate_address(self, address: str) -> None:
        validate_page_id(address)

    def payload(self, message: Outgoing) -> dict[str, str]:
        token = self.options["page_access_token"]
        data = {"message": self.post_text(message), "access_token": token}
        link = self.post_link(message)
        if link:
            data["link"] = link
        if self.options.get("app_secret"):
            data["appsecret_proof"] = hmac.new(
                self.options["app_secret"].encode(), token.encode(), hashlib.sha256
            ).hexdigest()
        return data

    def request(self, message: Outgoing) -> HttpRequest:
        data = self.payload(message)
        self.require_text(data["message"], link=data.get("link", ""))
        version = self.options.get("api_version") or DEFAULT_API_VERSION
        url = f"{self.base_url}/{version}/{message.address}/feed"
        return HttpRequest("POST", url, {"data": data})

    def parse(self, response: httpx.Response, answer: Any, message: Outgoing) -> str:
        if response.is_success and isinstance(answer, dict) and answer.get("id"):
            return str(answer["id"])
        raise self.error(response, answer)

    def provider_code(self, response: httpx.Response, answer: Any) -> tuple[Any, str]:
        error = _graph_error(answer)
        if error is None:
            return None, self.http_text(response)
        code = error.get("code")
        subcode = error.get("error_subcode")
        name = f"{code}/{subcode}" if subcode else f"{code}"
        text = f"Facebook {name} {error.get('type', '')}: {error.get('message', '')}".replace(
            "  ", " "
        )
        if error.get("fbtrace_id"):
            text += f" (fbtrace_id {error['fbtrace_id']})"
        return code, text

    def error_kind(self, code: Any, response: httpx.Response, answer: Any) -> ErrorKind:
        """The Graph API also flags an error as worth retrying (``is_transient``)."""
        error = _graph_error(answer)
        if error is not None and error.get("is_transient"):
            return "transient"
        return super().error_kind(code, response, answer)

    def retry_after(self, response: httpx.Response, answer: Any) -> float | None:
        return _regain_access_seconds(response)


def _graph_error(answer: Any) -> dict[str, Any] | None:
    error = answer.get("error") if isinstance(answer, dict) else None
    return error if isinstance(error, dict) else None


def _regain_access_seconds(response: httpx.Response) -> float | None:
    """``Retry-After``, else the longest ``estimated_time_to_regain_access`` (minutes) of the
    ``X-Business-Use-Case-Usage`` header Facebook sends with rate-limit errors."""
    seconds = retry_after_seconds(response.headers.get("Retry-After"))
    if seconds is not None:
        return seconds
    try:
        usage = json.loads(response.headers.get("X-Business-Use-Case-Usage") or "{}")
    except ValueError:
        return None
    minutes = [
        entry.get("estimated_time_to_regain_access")
        for entries in (usage.values() if isinstance(usage, dict) else [])
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict)
    ]
    minutes = [m for m in minutes if isinstance(m, int | float) and m > 0]
    return min(max(minutes) * 60.0, MAX_RETRY_AFTER) if minutes else None
