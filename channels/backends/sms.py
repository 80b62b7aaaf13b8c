"""SMS through Twilio's Programmable Messaging REST API.

``POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json``, form-encoded, with HTTP
basic auth (Account SID, Auth Token): ``To``, ``From`` (a number or alphanumeric sender id)
or ``MessagingServiceSid``, ``Body``, and ``StatusCallback``. The message's ``sid`` (``SM…``)
is stored as its provider id.

``StatusCallback`` is this site's hook, ``{SITE_URL}/hooks/twilio/<channel key>/status/``
(``campaigns.views.hooks``), or the channel's own ``status_callback`` URL; none is sent when
the channel sets ``track_delivery: off`` or the site cannot build the URL (no ``SITE_URL``,
or ``campaigns.urls`` not included). Twilio signs each callback (``X-Twilio-Signature``, checked
with ``twilio_signature_valid``); ``TWILIO_DELIVERY_STATUS`` maps its ``MessageStatus`` to
the message's ``delivery_status``, and ``CALLBACK_DEAD_NUMBER_CODES`` are the ``ErrorCode``s
that deactivate the number.

Twilio's error answers (``{"code": 21211, "message": …, "more_info": …, "status": 400}``):
codes saying the number is invalid, not a mobile number, or unsubscribed (STOP) raise
``AddressRejected`` (the number is deactivated); 429 and 5xx are retried (honouring
``Retry-After``); other 4xx fail the message with Twilio's code and text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.urls import NoReverseMatch, reverse

from ..addresses import validate_phone
from .base import Outgoing
from .http import HttpBackend, HttpConfigForm, HttpRequest

#: Twilio error codes that say the *recipient's* number cannot get SMS: it is deactivated.
#: (Codes that may be about the sender, like 21401 or 21606, only fail the message.)
DEAD_NUMBER_CODES = {
    21211,  # Invalid 'To' Phone Number
    21610,  # Attempt to send to unsubscribed recipient (replied STOP)
    21614,  # 'To' number is not a valid mobile number (a landline, say)
}

#: ``ErrorCode``s of a status callback (``undelivered`` / ``failed``) that say the number is
#: dead: the codes above (a message accepted through a Messaging Service reports them here),
#: and 30005 "Unknown destination handset" (the number is unknown to its carrier and may no
#: longer exist). Not these, which say nothing lasting about the number: 30003 "Unreachable
#: destination handset" (powered off, no signal: Twilio suggests sending again), 30004
#: "Message blocked", 30006 "Landline or unreachable carrier" (also given when a short code
#: cannot reach the carrier: a sender problem), 30007 "Message filtered", 30008 "Unknown
#: error".
CALLBACK_DEAD_NUMBER_CODES = DEAD_NUMBER_CODES | {30005}

#: Twilio's ``MessageStatus`` → the message's ``delivery_status``. Inbound statuses
#: (``receiving``, ``received``) and unlisted ones are ignored.
TWILIO_DELIVERY_STATUS = {
    "accepted": "queued",  # taken by a Messaging Service
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",  # handed to the carrier
    "delivered": "delivered",  # the carrier confirmed delivery to the handset
    "read": "read",  # WhatsApp and RCS read receipts
    "undelivered": "undelivered",  # the carrier could not deliver it (see ErrorCode)
    "failed": "failed",  # Twilio could not send it (see ErrorCode)
    "canceled": "cancelled",  # a scheduled message cancelled
}


class TwilioConfigForm(HttpConfigForm):
    account_sid = forms.CharField(
        validators=[RegexValidator(r"^AC[0-9a-fA-F]{32}$", "an Account SID: AC + 32 hex digits")],
        help_text="Account SID (AC…), from the Twilio console.",
    )
    auth_token = forms.CharField(help_text="Auth Token, from the Twilio console.")
    from_number = forms.CharField(
        required=False,
        max_length=16,
        help_text="Sender: a Twilio number in E.164 (+14155550123) or an alphanumeric "
        "sender id (up to 11 characters). Or set a messaging service.",
    )
    messaging_service_sid = forms.CharField(
        required=False,
        validators=[
            RegexValidator(r"^MG[0-9a-fA-F]{32}$", "a Messaging Service SID: MG + 32 hex digits")
        ],
        help_text="Messaging Service SID (MG…); used instead of from_number when set.",
    )
    track_delivery = forms.ChoiceField(
        required=False,
        choices=[
            ("", "on: Twilio posts delivery status to this site (default)"),
            ("off", "off"),
        ],
        help_text="Ask Twilio for delivery status callbacks at SITE_URL/hooks/twilio/<channel "
        "key>/status/ (SITE_URL must be the public URL Twilio can reach).",
    )
    status_callback = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="Another URL Twilio posts delivery status to (a proxy in front of this "
        "site's hook, say); default: this site's hook.",
    )

    secret_fields = ("auth_token",)

    def clean_from_number(self) -> str:
        sender = self.cleaned_data["from_number"].strip()
        if not sender or _alphanumeric_sender(sender):
            return sender
        try:
            return validate_phone(sender)
        except ValidationError:
            raise ValidationError(
                "a number in E.164 format (+14155550123) or an alphanumeric sender id "
                "(1-11 letters, digits or spaces, at least one letter)"
            ) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("from_number") and not data.get("messaging_service_sid"):
            raise ValidationError("set from_number or messaging_service_sid")
        return data


def _alphanumeric_sender(sender: str) -> bool:
    return (
        len(sender) <= 11
        and any(c.isalpha() for c in sender)
        and all(c.isascii() and (c.isalnum() or c == " ") for c in sender)
    )


class TwilioSmsBackend(HttpBackend):
    key = "sms.twilio"
    verbose_name = "SMS (Twilio)"
    address_key = "phone"
    template_fields = ("text",)
    ConfigForm = TwilioConfigForm
    category = "sms"
    status_callbacks = "twilio"
    default_base_url = "https://api.twilio.com"
    errors = dict.fromkeys(DEAD_NUMBER_CODES, "dead")

    def client_options(self) -> dict[str, Any]:
        return {"auth": (self.options["account_sid"], self.options["auth_token"])}

    def address(self, recipient: Mapping[str, Any]) -> str | None:
        """The recipient's number in E.164, however it was written; as given when it is no
        phone number (``validate_address`` then says so)."""
        address = super().address(recipient)
        try:
            return validate_phone(address) if address else address
        except ValidationError:
            return address

    def validate_address(self, address: str) -> None:
        validate_phone(address)

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.options['account_sid']}/Messages.json"

    def payload(self, message: Outgoing) -> dict[str, str]:
        data = {"To": message.address, "Body": message.text}
        if self.options.get("messaging_service_sid"):
            data["MessagingServiceSid"] = self.options["messaging_service_sid"]
        else:
            data["From"] = self.options["from_number"]
        if self.status_callback_url:
            data["StatusCallback"] = self.status_callback_url
        return data

    @cached_property
    def status_callback_url(self) -> str:
        """Where Twilio posts this channel's delivery status: the ``status_callback`` option,
        else this site's hook (empty when tracking is off or the site cannot build the URL)."""
        if self.options.get("track_delivery") == "off":
            return ""
        if self.options.get("status_callback"):
            return self.options["status_callback"]
        site = (getattr(settings, "SITE_URL", "") or "").rstrip("/")
        if not site or not self.channel_key:
            return ""
        try:
            path = reverse("notifier:twilio-status", kwargs={"channel_key": self.channel_key})
        except NoReverseMatch:
            return ""
        return site + path

    def request(self, message: Outgoing) -> HttpRequest:
        return HttpRequest("POST", self.messages_url, {"data": self.payload(message)})

    def parse(self, response: httpx.Response, answer: Any, message: Outgoing) -> str:
        if response.is_success and isinstance(answer, dict) and answer.get("sid"):
            return str(answer["sid"])
        raise self.error(response, answer)

    def provider_code(self, response: httpx.Response, answer: Any) -> tuple[Any, str]:
        if not isinstance(answer, dict) or "code" not in answer:
            return None, self.http_text(response)
        code = answer.get("code")
        detail = f"Twilio error {code}: {answer.get('message', '')}".strip()
        if answer.get("more_info"):
            detail += f" ({answer['more_info']})"
        return code, self.http_text(response, detail)


# --- status callbacks -------------------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Mapping[str, Iterable[str]]) -> str:
    """``X-Twilio-Signature`` as Twilio computes it: HMAC-SHA1, keyed with the Auth Token, of
    the full URL Twilio requested (with its query string) followed by each POST parameter,
    sorted by name, as name + value with no separators (a repeated name: each value, sorted);
    base64-encoded."""
    data = url + "".join(name + value for name in sorted(params) for value in sorted(params[name]))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as given, and with its default port added or removed: Twilio may sign either
    (its own helper libraries accept both)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return [url]
    variants = [url]
    if port is None and default:
        variants.append(urlunsplit(parts._replace(netloc=f"{host}:{default}")))
    elif port is not None:
        variants.append(urlunsplit(parts._replace(netloc=host)))
    return variants


def twilio_signature_valid(
    *, auth_token: str, urls: Iterable[str], params: Mapping[str, Iterable[str]], signature: str
) -> bool:
    """Whether ``signature`` (the ``X-Twilio-Signature`` header) signs ``params`` for one of
    ``urls`` (the public URLs Twilio may have called), compared in constant time."""
    if not auth_token or not signature:
        return False
    given = signature.strip().encode()
    valid = False
    for url in urls:
        for variant in _url_variants(url):
            expected = twilio_signature(auth_token, variant, params).encode()
            valid |= hmac.compare_digest(expected, given)
    return valid
