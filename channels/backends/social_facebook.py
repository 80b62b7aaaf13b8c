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

from channels.backends.base import DeliveryError, Outgoing, PermanentError, TransientError
from channels.backends.http import MAX_RETRY_AFTER, response_json, retry_after_seconds
from channels.backends.social import SocialBackend, SocialConfigForm

PAGE_ID = re.compile(r"^\d{1,30}$")
API_VERSION = re.compile(r"^v\d{1,3}\.\d{1,2}$")
DEFAULT_API_VERSION = "v24.0"
RATE_LIMITED = {4, 17, 32, 613}
TEMPORARY = {1, 2}
INVALID_TOKEN = 190
PERMISSION = 10


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

    def send_one(self, message: Outgoing) -> str:
        data = self.payload(message)
        self.require_text(data["message"], link=data.get("link", ""))
        version = self.options.get("api_version") or DEFAULT_API_VERSION
        response = self.post(f"{self.base_url}/{version}/{message.address}/feed", data=data)
        answer = response_json(response)
        if response.is_success and isinstance(answer, dict) and answer.get("id"):
            return str(answer["id"])
        error = answer.get("error") if isinstance(answer, dict) else None
        if not isinstance(error, dict):
            raise self.error_for_status(response)
        raise self.graph_error(response, error)

    def graph_error(self, response: httpx.Response, error: dict[str, Any]) -> DeliveryError:
        code = error.get("code")
        subcode = error.get("error_subcode")
        name = f"{code}/{subcode}" if subcode else f"{code}"
        text = f"Facebook {name} {error.get('type', '')}: {error.get('message', '')}".replace(
            "  ", " "
        )
        if error.get("fbtrace_id"):
            text += f" (fbtrace_id {error['fbtrace_id']})"
        if code in RATE_LIMITED or code in TEMPORARY or error.get("is_transient"):
            return TransientError(text, retry_after=_regain_access_seconds(response))
        if code == INVALID_TOKEN:
            return PermanentError(f"{text} (renew the channel's page_access_token)")
        if code == PERMISSION or (isinstance(code, int) and 200 <= code <= 299):
            return PermanentError(f"{text} (the page_access_token lacks a permission or task)")
        if response.status_code >= 500:
            return TransientError(text)
        return PermanentError(text)


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
