"""Expo push receipts, as Expo documents them, become delivery events."""

from __future__ import annotations

from channels.webhooks.base import DeliveryEvent
from channels.webhooks.expo import receipt_event


def event(receipt: dict) -> DeliveryEvent:
    return receipt_event(channel_key="push", provider_id="XXXXXXXX-1", receipt=receipt)


def test_an_ok_receipt_is_delivered():
    assert event({"status": "ok"}) == DeliveryEvent(
        channel_key="push", provider_id="XXXXXXXX-1", status="delivered", esp="expo", raw_type="ok"
    )


def test_an_unregistered_device_fails_and_its_token_is_dead():
    gone = event(
        {
            "status": "error",
            "message": '"ExponentPushToken[gone]" is not a registered push notification recipient',
            "details": {"error": "DeviceNotRegistered"},
        }
    )
    assert (gone.status, gone.address_dead, gone.raw_type) == (
        "failed",
        True,
        "DeviceNotRegistered",
    )
    assert gone.reason == (
        'Expo DeviceNotRegistered: "ExponentPushToken[gone]" is not a registered push '
        "notification recipient"
    )


def test_other_errors_fail_and_keep_the_token():
    big = event({"status": "error", "message": "too big", "details": {"error": "MessageTooBig"}})
    assert (big.status, big.address_dead, big.reason) == (
        "failed",
        False,
        "Expo MessageTooBig: too big",
    )
    bare = event({"status": "error", "message": "odd"})
    assert (bare.status, bare.reason) == ("failed", "Expo error: odd")


def test_a_receipt_status_expo_does_not_document_is_unknown():
    odd = event({"status": "pending"})
    assert (odd.status, odd.reason) == ("unknown", "Expo receipt status 'pending'")
