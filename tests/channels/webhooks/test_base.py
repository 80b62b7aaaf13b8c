"""The one type every provider's feedback becomes."""

from __future__ import annotations

import datetime as dt

import pytest

from channels.webhooks.base import STATUSES, DeliveryEvent


def test_a_delivery_event_names_its_status_from_the_one_list():
    event = DeliveryEvent(channel_key="sms", provider_id="SM1", status="delivered")
    assert (event.reason, event.address_dead, event.suppress, event.at) == ("", False, False, None)
    assert {"delivered", "bounced", "complained", "read", "cancelled", "unknown"} <= STATUSES


def test_an_unknown_status_or_a_naive_time_is_refused_by_name():
    with pytest.raises(ValueError, match="delivery status 'arrived' is not one of"):
        DeliveryEvent(channel_key="sms", provider_id="SM1", status="arrived")
    with pytest.raises(ValueError, match="must be aware"):
        DeliveryEvent(
            channel_key="sms", provider_id="SM1", status="sent", at=dt.datetime(2026, 1, 1)
        )
