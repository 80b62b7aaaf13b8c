"""Expo push receipts as delivery events. A receipt (``receipts(ids)`` of the Expo backend)
says what Apple or Google answered: ``{"status": "ok"}`` → delivered; ``{"status": "error",
"message": …, "details": {"error": code}}`` → failed with Expo's code and words, and
``DeviceNotRegistered`` says the token is dead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..backends.expo import ExpoPushBackend
from .base import DeliveryEvent


def receipt_event(
    *, channel_key: str, provider_id: str, receipt: Mapping[str, Any]
) -> DeliveryEvent:
    """The event of the receipt Expo gave for the ticket ``provider_id``."""
    if receipt.get("status") == "ok":
        return DeliveryEvent(
            channel_key=channel_key,
            provider_id=provider_id,
            status="delivered",
            esp="expo",
            raw_type="ok",
        )
    if receipt.get("status") != "error":
        return DeliveryEvent(
            channel_key=channel_key,
            provider_id=provider_id,
            status="unknown",
            reason=f"Expo receipt status {receipt.get('status')!r}",
            esp="expo",
            raw_type=str(receipt.get("status")),
        )
    details = receipt.get("details") if isinstance(receipt.get("details"), Mapping) else {}
    code = str(details.get("error") or "")
    return DeliveryEvent(
        channel_key=channel_key,
        provider_id=provider_id,
        status="failed",
        reason=f"Expo {code or 'error'}: {receipt.get('message', '')}".strip(),
        address_dead=ExpoPushBackend.errors.get(code) == "dead",
        esp="expo",
        raw_type=code or "error",
    )
