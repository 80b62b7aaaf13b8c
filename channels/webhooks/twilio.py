"""Twilio's message status callbacks as delivery events.

Twilio posts a status callback (form fields ``MessageSid``, ``MessageStatus``,
``ErrorCode``, ``ErrorMessage`` …) to the ``StatusCallback`` URL the SMS backend gave it,
signed with the channel's Auth Token (``X-Twilio-Signature``). ``twilio_status_event``
checks the signature with the ``twilio`` package's ``RequestValidator`` against the public
URLs Twilio may have called (``callback_urls``: never the URL the request reached this
process at, which differs behind a proxy), then maps the status: ``TWILIO_DELIVERY_STATUS``
gives the delivery status, ``CALLBACK_DEAD_NUMBER_CODES`` the error codes that say the number
is dead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.utils.datastructures import MultiValueDict
from twilio.request_validator import RequestValidator

from ..backends.sms import DEAD_NUMBER_CODES
from ..conf import site_url
from ..models import ChannelConfig
from ..registry import UnknownBackend
from .base import DeliveryEvent, WebhookForbidden, WebhookNotFound

#: ``ErrorCode``s of a status callback (``undelivered`` / ``failed``) that say the number is
#: dead: the codes the API answers at send time (a message accepted through a Messaging
#: Service reports them here), and 30005 "Unknown destination handset" (the number is
#: unknown to its carrier and may no longer exist). Not these, which say nothing lasting
#: about the number: 30003 "Unreachable destination handset" (powered off, no signal: Twilio
#: suggests sending again), 30004 "Message blocked", 30006 "Landline or unreachable carrier"
#: (also given when a short code cannot reach the carrier: a sender problem), 30007 "Message
#: filtered", 30008 "Unknown error".
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


def callback_urls(*, channel: ChannelConfig, path: str) -> list[str]:
    """The URLs Twilio may have signed for a request to ``path`` (with its query string):
    ``SITE_URL`` + path (what the backend sends as ``StatusCallback``), and the channel's own
    ``status_callback`` when it sets one."""
    urls = [site_url() + path] if site_url() else []
    own = (channel.config or {}).get("status_callback")
    if own:
        urls.append(str(own))
    return urls


def twilio_signature_valid(
    *, auth_token: str, urls: Iterable[str], params: Mapping[str, Iterable[str]], signature: str
) -> bool:
    """Whether ``signature`` (the ``X-Twilio-Signature`` header) signs ``params`` (every POST
    parameter, a list of values each) for one of ``urls``, as Twilio's own ``RequestValidator``
    checks it (with and without the URL's default port)."""
    if not auth_token or not signature:
        return False
    validator = RequestValidator(auth_token)
    fields = MultiValueDict({name: list(values) for name, values in params.items()})
    return any(validator.validate(url, fields, signature.strip()) for url in urls)


def twilio_status_event(
    *,
    channel: ChannelConfig,
    urls: Iterable[str],
    params: Mapping[str, Iterable[str]],
    signature: str,
) -> DeliveryEvent | None:
    """The event of a status callback for ``channel``, once its signature is checked; None
    for a status that says nothing about a sent message (inbound ones, unknown words) or a
    callback without a message sid.

    Raises ``WebhookNotFound`` when the channel's backend takes no Twilio callbacks, and
    ``WebhookForbidden`` when the signature is missing or wrong."""
    try:
        takes_callbacks = channel.backend_class.status_callbacks == "twilio"
    except UnknownBackend:
        takes_callbacks = False
    if not takes_callbacks:
        raise WebhookNotFound(channel.key)
    params = {name: list(values) for name, values in params.items()}
    if not twilio_signature_valid(
        auth_token=str((channel.config or {}).get("auth_token") or ""),
        urls=urls,
        params=params,
        signature=signature,
    ):
        raise WebhookForbidden(channel.key)

    def first(name: str) -> str:
        return (params.get(name) or [""])[0]

    sid = first("MessageSid") or first("SmsSid")
    message_status = first("MessageStatus") or first("SmsStatus")
    status = TWILIO_DELIVERY_STATUS.get(message_status.strip().lower())
    if status is None or not sid:
        return None
    error_code, error_message = first("ErrorCode").strip(), first("ErrorMessage")
    code = int(error_code) if error_code.isdigit() else None
    reason = ""
    if code is not None or error_message:
        reason = f"Twilio {message_status}: error {error_code or '?'}"
        if error_message:
            reason += f": {error_message}"
        if code is not None:
            reason += f" (https://www.twilio.com/docs/errors/{code})"
    return DeliveryEvent(
        channel_key=channel.key,
        provider_id=sid,
        status=status,
        reason=reason,
        address_dead=code in CALLBACK_DEAD_NUMBER_CODES,
        esp="twilio",
        raw_type=message_status,
    )
