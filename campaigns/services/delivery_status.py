"""What providers say after a message was sent: Twilio's SMS status callbacks and Expo's push
receipts. Like the email events (``tracking``), they set the message's ``delivery_status``
(and ``delivery_updated_at``, and ``status_reason`` when there is an error); an answer that
says the address is dead deactivates its ``ChannelAddress``, as ``AddressRejected`` does at
send time, so the next ``notify()`` skips it. The message's ``status`` stays ``sent``.

Twilio (``sms_status_hook``, called by ``campaigns.views.hooks``): each callback is checked
against ``X-Twilio-Signature`` before anything changes. Callbacks may arrive out of order;
``delivery_status`` only moves forward (``queued`` → ``sending`` → ``sent`` → a final one:
``delivered``, ``undelivered``, ``failed``, ``cancelled``; ``read`` only after
``delivered``), checked in the ``UPDATE`` itself, so a late ``sent`` never undoes a
``delivered``, even when two callbacks race.

Expo (``push_receipts_poll``, run by RQ's cron scheduler and ``manage.py
poll_push_receipts``): messages of Expo channels sent more than ``PUSH_RECEIPT_DELAY`` seconds
ago whose ``delivery_status`` is still empty are polled for receipts, up to 1000 per request.
``ok`` → ``delivered``; ``error`` → ``failed`` with Expo's code and text in
``status_reason`` (``DeviceNotRegistered`` also deactivates the push token). A message whose
receipt is not there yet keeps its empty ``delivery_status`` and is asked for again next
time; after ``PUSH_RECEIPT_MAX_AGE`` seconds it becomes ``unknown``. The empty
``delivery_status`` is the "not read yet" mark, so no column is needed. The number of queries
does not grow with the number of receipts: one read and one write per 1000 messages, plus
one write for the given-up ones and two for deactivated tokens.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels.backends.base import DeliveryError
from channels.backends.expo import MAX_RECEIPTS, ExpoPushBackend
from channels.backends.sms import TwilioSmsBackend
from channels.models import ChannelConfig
from channels.webhooks.twilio import (
    CALLBACK_DEAD_NUMBER_CODES,
    TWILIO_DELIVERY_STATUS,
    twilio_signature_valid,
)

from ..conf import app_settings
from ..models import Message, MessageStatus
from .addresses import addresses_deactivate
from .bulk import rows_update

logger = logging.getLogger("notifier.tracking")

#: For each SMS delivery status, the statuses it may replace: it only moves forward.
_EARLY = ("", "queued", "sending", "sent")
SMS_STATUS_REPLACES: dict[str, tuple[str, ...]] = {
    "queued": ("",),
    "sending": ("", "queued"),
    "sent": ("", "queued", "sending"),
    "delivered": _EARLY,
    "undelivered": _EARLY,
    "failed": _EARLY,
    "cancelled": _EARLY,
    "read": (*_EARLY, "delivered"),
}

MAX_REASON = Message._meta.get_field("status_reason").max_length


class HookNotFound(Exception):
    """No channel of that kind has this key: the hook answers 404."""


class HookForbidden(Exception):
    """The request is not signed by the provider: the hook answers 403, nothing changes."""


# --- shared ---------------------------------------------------------------------------------


def _channels_of(backend: type) -> list[ChannelConfig]:
    """The channels whose backend is ``backend`` or a subclass (few rows: checked here)."""
    found = []
    for channel in ChannelConfig.objects.order_by("pk"):
        try:
            if issubclass(channel.backend_class, backend):
                found.append(channel)
        except Exception:  # an unknown backend path: not ours
            logger.debug("channel %s: backend %s not loadable", channel.key, channel.backend)
    return found


# --- Twilio SMS status callbacks ------------------------------------------------------------


def public_urls(*, path: str, channel: ChannelConfig) -> list[str]:
    """The URLs Twilio may have signed for a request to ``path`` (with its query string):
    ``SITE_URL`` + path (what the backend sends as ``StatusCallback``), and the channel's own
    ``status_callback`` when it sets one. Never the URL the request reached this process at:
    behind a proxy or TLS terminator that differs from the public one Twilio signed."""
    urls = [settings.SITE_URL.rstrip("/") + path] if getattr(settings, "SITE_URL", "") else []
    own = (channel.config or {}).get("status_callback")
    if own:
        urls.append(str(own))
    return urls


def sms_status_hook(
    *, channel_key: str, path: str, params: Mapping[str, Iterable[str]], signature: str
) -> Message | None:
    """A Twilio status callback for channel ``channel_key``: checks its signature, then
    records it. ``params`` holds every POST parameter (a list of values each)."""
    channel = ChannelConfig.objects.filter(key=channel_key).first()
    if channel is None:
        raise HookNotFound(channel_key)
    try:
        is_twilio = issubclass(channel.backend_class, TwilioSmsBackend)
    except Exception:
        is_twilio = False
    if not is_twilio:
        raise HookNotFound(channel_key)
    params = {name: list(values) for name, values in params.items()}
    if not twilio_signature_valid(
        auth_token=str((channel.config or {}).get("auth_token") or ""),
        urls=public_urls(path=path, channel=channel),
        params=params,
        signature=signature,
    ):
        raise HookForbidden(channel_key)

    def first(name: str) -> str:
        return (params.get(name) or [""])[0]

    return sms_status_record(
        channel=channel,
        message_sid=first("MessageSid") or first("SmsSid"),
        message_status=first("MessageStatus") or first("SmsStatus"),
        error_code=first("ErrorCode"),
        error_message=first("ErrorMessage"),
    )


def sms_status_record(
    *,
    channel: ChannelConfig,
    message_sid: str,
    message_status: str,
    error_code: str = "",
    error_message: str = "",
    timestamp: dt.datetime | None = None,
) -> Message | None:
    """Record one Twilio status for the message with that ``MessageSid`` on ``channel``;
    returns the message (as it is now), or None when there is none or the status is not one
    we record."""
    status = TWILIO_DELIVERY_STATUS.get(message_status.strip().lower())
    if status is None or not message_sid:
        logger.info("Twilio status %r for %s ignored", message_status, message_sid)
        return None
    now = timestamp or timezone.now()
    fields = {"delivery_status": status, "delivery_updated_at": now, "updated_at": now}
    code = int(error_code) if error_code.strip().isdigit() else None
    reason = ""
    if code is not None or error_message:
        reason = f"Twilio {message_status}: error {error_code or '?'}"
        if error_message:
            reason += f": {error_message}"
        reason += f" (https://www.twilio.com/docs/errors/{code})" if code is not None else ""
        fields["status_reason"] = reason[:MAX_REASON]
    rows = Message.objects.filter(channel=channel, provider_id=message_sid)
    moved = rows.filter(delivery_status__in=SMS_STATUS_REPLACES[status]).update(**fields)
    message = rows.order_by("-id").first()
    if message is None:
        logger.info("Twilio status %s for unknown message %s", message_status, message_sid)
        return None
    if moved and code in CALLBACK_DEAD_NUMBER_CODES:
        kind = channel.backend_class.address_key or ""
        addresses_deactivate(kind=kind, dead={message.address: (message.user_id, reason)})
    return message


# --- Expo push receipts ---------------------------------------------------------------------


@dataclass(slots=True)
class ReceiptSummary:
    polled: int = 0  # messages asked about
    delivered: int = 0
    failed: int = 0  # error receipts
    deactivated: int = 0  # push tokens Expo called DeviceNotRegistered
    pending: int = 0  # no receipt yet: asked again next time
    unknown: int = 0  # no receipt after PUSH_RECEIPT_MAX_AGE
    errors: int = 0  # requests Expo refused or that failed

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def receipt_outcome(receipt: Mapping) -> tuple[str, str, bool]:
    """``(delivery_status, status_reason, address dead)`` for one Expo receipt."""
    if receipt.get("status") == "ok":
        return "delivered", "", False
    details = receipt.get("details") if isinstance(receipt.get("details"), dict) else {}
    code = str(details.get("error") or "")
    if receipt.get("status") != "error":
        return "unknown", f"Expo receipt status {receipt.get('status')!r}"[:MAX_REASON], False
    reason = f"Expo {code or 'error'}: {receipt.get('message', '')}".strip()
    return "failed", reason[:MAX_REASON], code == "DeviceNotRegistered"


def push_receipts_poll(*, now: dt.datetime | None = None) -> ReceiptSummary:
    """One pass over every Expo channel (see the module's docstring)."""
    now = now or timezone.now()
    summary = ReceiptSummary()
    for channel in _channels_of(ExpoPushBackend):
        try:
            backend = channel.get_backend()
        except Exception:
            logger.exception("channel %s: cannot poll push receipts", channel.key)
            summary.errors += 1
            continue
        with backend:
            _channel_receipts_poll(channel=channel, backend=backend, now=now, summary=summary)
    return summary


def _channel_receipts_poll(
    *, channel: ChannelConfig, backend: ExpoPushBackend, now: dt.datetime, summary: ReceiptSummary
) -> None:
    due = now - dt.timedelta(seconds=app_settings.PUSH_RECEIPT_DELAY)
    give_up = now - dt.timedelta(seconds=app_settings.PUSH_RECEIPT_MAX_AGE)
    last_id = 0
    while True:
        with transaction.atomic():
            # Rows another poll holds are skipped, so two polls at once ask Expo once.
            rows = list(
                Message.objects.filter(
                    channel=channel,
                    status=MessageStatus.SENT,
                    delivery_status="",
                    sent_at__lte=due,
                    id__gt=last_id,
                )
                .exclude(provider_id="")
                .select_for_update(skip_locked=True)
                .order_by("id")
                .values("id", "provider_id", "address", "user_id", "sent_at")[:MAX_RECEIPTS]
            )
            if not rows:
                return
            last_id = rows[-1]["id"]
            summary.polled += len(rows)
            try:
                receipts = backend.receipts([row["provider_id"] for row in rows])
            except DeliveryError as error:
                logger.warning("channel %s: push receipts not read: %s", channel.key, error)
                summary.errors += 1
                return
            _receipts_record(
                rows,
                receipts,
                kind=backend.recipient_key() or "",
                now=now,
                give_up=give_up,
                summary=summary,
            )
        if len(rows) < MAX_RECEIPTS:
            return


def _receipts_record(
    rows: list[dict],
    receipts: Mapping[str, Mapping],
    *,
    kind: str,
    now: dt.datetime,
    give_up: dt.datetime,
    summary: ReceiptSummary,
) -> None:
    results: list[dict] = []
    dead: dict[str, tuple[int | None, str]] = {}
    expired: list[int] = []
    for row in rows:
        receipt = receipts.get(row["provider_id"])
        if receipt is None:
            if row["sent_at"] < give_up:
                expired.append(row["id"])
            else:
                summary.pending += 1
            continue
        status, reason, is_dead = receipt_outcome(receipt)
        results.append(
            {
                "id": row["id"],
                "delivery_status": status,
                "delivery_updated_at": now,
                "status_reason": reason,
            }
        )
        if status == "delivered":
            summary.delivered += 1
        elif status == "failed":
            summary.failed += 1
        else:
            summary.unknown += 1
        if is_dead:
            dead[row["address"]] = (row["user_id"], reason)
    # Every outcome in one statement; a row another writer already settled is left alone.
    rows_update(
        Message,
        results,
        ("delivery_status", "delivery_updated_at", "status_reason"),
        only_if={"delivery_status": ""},
    )
    if expired:
        Message.objects.filter(id__in=expired, delivery_status="").update(
            delivery_status="unknown",
            delivery_updated_at=now,
            status_reason="no Expo receipt within PUSH_RECEIPT_MAX_AGE",
            updated_at=now,
        )
        summary.unknown += len(expired)
    if dead:
        addresses_deactivate(kind=kind, dead=dead)
        summary.deactivated += len(dead)
