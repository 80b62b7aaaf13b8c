"""django-anymail's tracking events (what its ESP webhook views send) become delivery
events; a hard bounce or a complaint asks for suppression."""

from __future__ import annotations

import datetime as dt

import pytest
from anymail.signals import AnymailTrackingEvent

from channels.webhooks.anymail import anymail_event
from channels.webhooks.base import DeliveryEvent

WHEN = dt.datetime(2026, 11, 30, 9, 30, tzinfo=dt.UTC)


def test_a_delivered_event_names_the_message_by_the_esps_id():
    event = AnymailTrackingEvent(
        event_type="delivered",
        message_id="0f5a-esp-id",
        recipient="ann@example.com",
        timestamp=WHEN,
    )
    assert anymail_event(event, "Postmark") == DeliveryEvent(
        channel_key="",
        provider_id="0f5a-esp-id",
        status="delivered",
        at=WHEN,
        esp="Postmark",
        raw_type="delivered",
        address="ann@example.com",
    )


@pytest.mark.parametrize("event_type", ["bounced", "complained"])
def test_bounces_and_complaints_ask_for_suppression(event_type):
    event = AnymailTrackingEvent(
        event_type=event_type,
        message_id="id-1",
        recipient="gone@example.com",
        mta_response="550 5.1.1 user unknown",
    )
    found = anymail_event(event, "Mailgun")
    assert (found.status, found.suppress, found.reason) == (
        event_type,
        True,
        "550 5.1.1 user unknown",
    )


@pytest.mark.parametrize("event_type", ["deferred", "opened", "clicked", "rejected", "failed"])
def test_other_recorded_events_do_not_suppress(event_type):
    found = anymail_event(
        AnymailTrackingEvent(event_type=event_type, message_id="id-1", description="why"),
        "Postmark",
    )
    assert (found.status, found.suppress, found.reason) == (event_type, False, "why")


@pytest.mark.parametrize(
    "event",
    [
        AnymailTrackingEvent(event_type="inbound", message_id="id-1"),
        AnymailTrackingEvent(event_type="autoresponded", message_id="id-1"),
        AnymailTrackingEvent(event_type="unknown", message_id="id-1"),
        AnymailTrackingEvent(event_type="delivered", message_id=None),
    ],
)
def test_events_about_no_sent_message_are_none(event):
    assert anymail_event(event, "Postmark") is None
