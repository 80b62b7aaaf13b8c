"""SMS through Twilio's Programmable Messaging REST API.

``POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json``, form-encoded, with HTTP
basic auth (Account SID, Auth Token): ``To``, ``From`` (a number or alphanumeric sender id)
or ``MessagingServiceSid``, ``Body``, and optionally ``StatusCallback``. The message's
``sid`` (``SM…``) is stored as its provider id.

Twilio's error answers (``{"code": 21211, "message": …, "more_info": …, "status": 400}``):
codes saying the number is invalid, not a mobile number, or unsubscribed (STOP) raise
``AddressRejected`` (the number is deactivated); 429 and 5xx are retried (honouring
``Retry-After``); other 4xx fail the message with Twilio's code and text.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from .base import AddressRejected, DeliveryError, Outgoing
from .http import E164, HttpBackend, HttpConfigForm, response_json, validate_e164

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
    status_callback = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="URL Twilio posts delivery status updates to.",
    )

    secret_fields = ("auth_token",)

    def clean_from_number(self) -> str:
        sender = self.cleaned_data["from_number"].strip()
        if sender and not (E164.match(sender) or _alphanumeric_sender(sender)):
            raise ValidationError(
                "a number in E.164 format (+14155550123) or an alphanumeric sender id "
                "(1-11 letters, digits or spaces, at least one letter)"
            )
        return sender

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
    default_base_url = "https://api.twilio.com"

    def client_options(self) -> dict[str, Any]:
        return {"auth": (self.options["account_sid"], self.options["auth_token"])}

    def validate_address(self, address: str) -> None:
        validate_e164(address)

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.options['account_sid']}/Messages.json"

    def payload(self, message: Outgoing) -> dict[str, str]:
        data = {"To": message.address, "Body": message.text}
        if self.options.get("messaging_service_sid"):
            data["MessagingServiceSid"] = self.options["messaging_service_sid"]
        else:
            data["From"] = self.options["from_number"]
        if self.options.get("status_callback"):
            data["StatusCallback"] = self.options["status_callback"]
        return data

    def send_one(self, message: Outgoing) -> str:
        response = self.post(self.messages_url, data=self.payload(message))
        answer = response_json(response)
        if response.is_success and isinstance(answer, dict) and answer.get("sid"):
            return str(answer["sid"])
        raise self.twilio_error(response, answer)

    def twilio_error(self, response, answer: Any) -> DeliveryError:
        if not isinstance(answer, dict) or "code" not in answer:
            return self.error_for_status(response)
        code = answer.get("code")
        detail = f"Twilio error {code}: {answer.get('message', '')}".strip()
        if answer.get("more_info"):
            detail += f" ({answer['more_info']})"
        if code in DEAD_NUMBER_CODES:
            return AddressRejected(f"{self.verbose_name} HTTP {response.status_code}: {detail}")
        return self.error_for_status(response, detail)
