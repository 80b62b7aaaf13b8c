"""Posts to an X account through the X API v2 (``POST /2/tweets``).

Authentication is OAuth 1.0a user context: the app's ``api_key`` / ``api_secret`` (the
consumer keys) and the account's ``access_token`` / ``access_token_secret``, from the app's
"Keys and tokens" page. Those tokens do not expire, which suits a server posting unattended
(OAuth 2.0 user tokens last two hours and need a refresh flow). Each request is signed with
HMAC-SHA1 by oauthlib; the JSON body is not part of the signature (RFC 5849 signs form bodies
only).

The post goes to the account the tokens belong to. The address names that account
(``@handle`` or a numeric user id): the recipient's ``x_account``, or the channel's
``account`` option; when ``account`` is set, a message addressed to another account fails
rather than posting to the wrong one.

The text is checked against X's limit before the request: X counts weighted characters
(most Latin text 1, CJK and emoji 2, every link 23), at most 280 (``max_length`` raises it
for accounts allowed longer posts). X answers ``201 {"data": {"id", "text"}}`` (the id is
stored); errors are problem JSON (``title``, ``detail``, ``type``, ``status``): 429 waits
until ``x-rate-limit-reset`` (or ``Retry-After``), 5xx retry, 401 names the credentials,
403 (duplicate content, not permitted) and other 4xx fail the message.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Mapping
from typing import Any

import httpx
import oauthlib.oauth1
from django import forms
from django.core.exceptions import ValidationError

from .base import Outgoing, PermanentError
from .http import MAX_RETRY_AFTER, HttpRequest, response_text, retry_after_seconds
from .social import SocialBackend, SocialConfigForm

ACCOUNT = re.compile(r"^(@?[A-Za-z0-9_]{1,15}|\d{1,20})$")
MAX_LENGTH = 280
URL = re.compile(r"https?://[^\s]+", re.IGNORECASE)
URL_WEIGHT = 23
#: twitter-text's ranges of code points that weigh 1; every other code point weighs 2.
LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
#: Parts of an emoji sequence that add nothing to the weight of its first code point.
WEIGHTLESS = {0x200D, 0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400)}


def validate_account(address: str) -> None:
    if not ACCOUNT.match(address):
        raise ValidationError(
            f"{address!r} is not an X account (an @handle of up to 15 letters, digits or _, "
            "or a numeric user id)"
        )


def weighted_length(text: str) -> int:
    """The length X counts: NFC-normalised, links 23, code points 1 or 2 (twitter-text v3)."""
    text = unicodedata.normalize("NFC", text)
    total = 0
    for index, part in enumerate(URL.split(text)):
        if index:
            total += URL_WEIGHT
        for char in part:
            point = ord(char)
            if point in WEIGHTLESS:
                continue
            total += 1 if any(low <= point <= high for low, high in LIGHT_RANGES) else 2
    return total


def oauth1_authorization(
    method: str,
    url: str,
    *,
    consumer_key: str,
    consumer_secret: str,
    token: str,
    token_secret: str,
    form: Mapping[str, str] | None = None,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> str:
    """The ``Authorization`` header of an OAuth 1.0a request signed with HMAC-SHA1 (RFC 5849),
    by oauthlib. ``form``: the fields of a form-encoded body, which the signature covers (a
    JSON body is not signed)."""
    client = oauthlib.oauth1.Client(
        consumer_key,
        client_secret=consumer_secret,
        resource_owner_key=token,
        resource_owner_secret=token_secret,
        signature_method=oauthlib.oauth1.SIGNATURE_HMAC_SHA1,
        nonce=nonce,
        timestamp=None if timestamp is None else str(timestamp),
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if form else {}
    _, signed, _ = client.sign(
        url, http_method=method, body=dict(form or {}) or None, headers=headers
    )
    return signed["Authorization"]


class XConfigForm(SocialConfigForm):
    api_key = forms.CharField(help_text="The app's API key (OAuth 1.0a consumer key).")
    api_secret = forms.CharField(help_text="The app's API key secret (consumer secret).")
    access_token = forms.CharField(
        help_text="The account's access token (OAuth 1.0a, with read and write permission)."
    )
    access_token_secret = forms.CharField(help_text="The account's access token secret.")
    account = forms.CharField(
        required=False,
        max_length=21,
        help_text="The account the tokens post as (@handle or user id): the default target, "
        "so one notify() with an empty recipient posts once.",
    )
    max_length = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=25000,
        help_text=f"Longest post X accepts from this account (default {MAX_LENGTH}).",
    )

    secret_fields = ("api_secret", "access_token", "access_token_secret")
    target_field = "account"
    target_validator = staticmethod(validate_account)


class XBackend(SocialBackend):
    key = "social.x"
    verbose_name = "X"
    address_key = "x_account"
    ConfigForm = XConfigForm
    default_base_url = "https://api.x.com"
    target_option = "account"
    hints = {401: "check the channel's api_key, api_secret, access_token and access_token_secret"}

    def validate_address(self, address: str) -> None:
        validate_account(address)

    def authorization(self, url: str) -> str:
        return oauth1_authorization(
            "POST",
            url,
            consumer_key=self.options["api_key"],
            consumer_secret=self.options["api_secret"],
            token=self.options["access_token"],
            token_secret=self.options["access_token_secret"],
        )

    def request(self, message: Outgoing) -> HttpRequest:
        account = self.default_target()
        if account and _account_name(message.address) != _account_name(account):
            raise PermanentError(
                f"X: this channel posts as {account} (the account of its access_token), "
                f"not as {message.address}"
            )
        text = self.post_text(message)
        link = self.post_link(message)
        if link and link not in text:
            text = f"{text} {link}".strip()
        self.require_text(text)
        limit = self.options.get("max_length") or MAX_LENGTH
        length = weighted_length(text)
        if length > limit:
            raise PermanentError(
                f"X: the post is {length} characters as X counts them; the limit is {limit} "
                "(set max_length if this account may post longer)"
            )
        url = f"{self.base_url}/2/tweets"
        headers = {"Authorization": self.authorization(url)}
        return HttpRequest("POST", url, {"json": {"text": text}, "headers": headers})

    def parse(self, response: httpx.Response, answer: Any, message: Outgoing) -> str:
        data = answer.get("data") if isinstance(answer, dict) else None
        if response.is_success and isinstance(data, dict) and data.get("id"):
            return str(data["id"])
        raise self.error(response, answer)

    def provider_code(self, response: httpx.Response, answer: Any) -> tuple[Any, str]:
        """X's errors are problem JSON without a code of their own: the status is the code."""
        status = response.status_code
        detail = _problem_text(answer) or response_text(response)
        if response.is_success:  # 2xx without a post id: X refused it in the body
            return status, f"X: no post created: {detail}"
        return status, f"X {status}: {detail}"

    def retry_after(self, response: httpx.Response, answer: Any) -> float | None:
        if response.status_code == 429:
            return _rate_limit_reset(response)
        return super().retry_after(response, answer)


def _account_name(address: str) -> str:
    return address.strip().removeprefix("@").lower()


def _problem_text(answer: Any) -> str:
    """``title: detail`` of a problem answer, or the messages of an ``errors`` list."""
    if not isinstance(answer, dict):
        return ""
    title, detail = answer.get("title") or "", answer.get("detail") or ""
    if title or detail:
        return f"{title}: {detail}" if title and detail and title != detail else title or detail
    errors = answer.get("errors")
    if isinstance(errors, list):
        return "; ".join(
            str(e.get("detail") or e.get("message") or e.get("title") or "")
            for e in errors
            if isinstance(e, dict)
        )
    return ""


def _rate_limit_reset(response: httpx.Response) -> float | None:
    """Seconds until ``x-rate-limit-reset`` (a Unix time), else ``Retry-After``."""
    reset = response.headers.get("x-rate-limit-reset", "")
    if reset.isdigit():
        return min(max(int(reset) - time.time(), 0.0), MAX_RETRY_AFTER)
    return retry_after_seconds(response.headers.get("Retry-After"))
