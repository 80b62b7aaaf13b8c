"""SMS through Twilio's Programmable Messaging REST API.

``POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json``, form-encoded, with HTTP
basic auth (Account SID, Auth Token): ``To``, ``From`` (a number or alphanumeric sender id)
or ``MessagingServiceSid``, ``Body``, and ``StatusCallback``. The message's ``sid`` (``SM…``)
is stored as its provider id.

``StatusCallback`` is this site's hook, ``{SITE_URL}/hooks/twilio/<channel key>/status/``
(the URL named ``notifier:twilio-status``), or the channel's own ``status_callback`` URL;
none is sent when the channel sets ``track_delivery: off`` or the site cannot build the URL
(no ``SITE_URL``, or the hook's URL not included). Twilio signs each callback
(``X-Twilio-Signature``); ``channels.webhooks.twilio`` checks it and turns it into a
``DeliveryEvent`` (``status_callbacks = "twilio"``).

Twilio's error answers (``{"code": 21211, "message": …, "more_info": …, "status": 400}``):
codes saying the number is invalid, not a mobile number, or unsubscribed (STOP) raise
``AddressRejected`` (the number is deactivated); 429 and 5xx are retried (honouring
``Retry-After``); other 4xx fail the message with Twilio's code and text.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import httpx
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.urls import NoReverseMatch, reverse

from ..addresses import validate_phone
from ..conf import site_url
from .base import Outgoing
from .fields import SMS_FIELDS
from .http import HttpBackend, HttpConfigForm, HttpRequest

#: Twilio error codes that say the *recipient's* number cannot get SMS: it is deactivated.
#: (Codes that may be about the sender, like 21401 or 21606, only fail the message.)
DEAD_NUMBER_CODES = {
    21211,  # Invalid 'To' Phone Number
    21610,  # Attempt to send to unsubscribed recipient (replied STOP)
    21614,  # 'To' number is not a valid mobile number (a landline, say)
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
    #: Twilio takes at most 1,600 characters (and advises 10 segments at most).
    template_fields = (SMS_FIELDS[0].but(max_length=1600),)
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
        site = site_url()
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
