"""Availability windows in the send path: notify() schedules into the windows (in the
recipient's timezone), dispatch puts back what a retry brought outside them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.api import InvalidRecipient, notify
from campaigns.models import AvailabilityWindow, Message
from campaigns.outbox.catalog import catalog, catalog_settled
from campaigns.outbox.dispatch import message_dispatch
from channels.backends import locmem
from tests import factories

UTC = dt.UTC
CONTEXT = {"order_id": "A-1"}
MONDAY = dt.datetime(2030, 1, 7, tzinfo=UTC)  # far ahead, so scheduled_at fixes "now"
EVERY_DAY = [0, 1, 2, 3, 4, 5, 6]


@pytest.fixture
def setup(db):
    channel = factories.memory_channel()
    template = factories.TemplateFactory(channel=channel, event__key="order-shipped")
    return template.event, channel


def window(start: str, end: str, *, event=None, channel=None, weekdays=EVERY_DAY):
    return AvailabilityWindow.objects.create(
        event=event,
        channel=channel,
        weekdays=weekdays,
        start_time=dt.time.fromisoformat(start),
        end_time=dt.time.fromisoformat(end),
    )


def due(recipient: dict, at: dt.datetime, **options) -> dt.datetime:
    (message,) = notify("order-shipped", recipient, CONTEXT, scheduled_at=at, **options).messages
    assert message.status == "scheduled"
    return message.next_attempt_at


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (MONDAY.replace(hour=1), MONDAY.replace(hour=2)),  # before the window: its start
        (MONDAY.replace(hour=16), MONDAY.replace(hour=2) + dt.timedelta(days=1)),  # after it
        (MONDAY.replace(hour=3, minute=30), MONDAY.replace(hour=3, minute=30)),  # inside: at once
    ],
)
def test_event_window_in_utc(setup, at, expected):
    event, _ = setup
    window("02:00", "05:00", event=event)
    assert due({"email": "a@x.io", "tz": "UTC"}, at) == expected


def test_recipient_timezone_decides(setup):
    event, _ = setup
    window("09:00", "10:00", event=event)
    at = MONDAY.replace(hour=0, minute=30)  # 09:30 in Tokyo, 16:30 (Sunday) in Los Angeles
    assert due({"email": "a@x.io", "tz": "Asia/Tokyo"}, at) == at
    los_angeles = due({"email": "b@x.io", "tz": "America/Los_Angeles"}, at)
    assert los_angeles == dt.datetime(2030, 1, 7, 17, 0, tzinfo=UTC)  # Monday 09:00 PST


def test_event_and_channel_windows_intersect(setup):
    event, channel = setup
    window("08:00", "12:00", event=event)
    window("10:00", "18:00", channel=channel)
    assert due({"email": "a@x.io"}, MONDAY.replace(hour=7)) == MONDAY.replace(hour=10)


def test_windows_that_never_meet_send_at_once(setup):
    event, channel = setup
    window("08:00", "09:00", event=event)
    window("20:00", "21:00", channel=channel)
    at = MONDAY.replace(hour=12)
    assert due({"email": "a@x.io"}, at) == at


def test_a_window_across_midnight_and_weekdays(setup):
    event, _ = setup
    window("22:00", "02:00", event=event, weekdays=[4])  # Friday night
    friday_noon = MONDAY.replace(hour=12) + dt.timedelta(days=4)
    assert due({"email": "a@x.io"}, friday_noon) == friday_noon.replace(hour=22)
    saturday_1am = friday_noon.replace(hour=1) + dt.timedelta(days=1)
    assert due({"email": "a@x.io"}, saturday_1am) == saturday_1am  # still Friday's window


def test_send_immediately_on_the_call_or_the_recipient(setup):
    event, _ = setup
    window("02:00", "05:00", event=event)
    at = MONDAY.replace(hour=16)
    assert due({"email": "a@x.io"}, at, send_immediately=True) == at
    assert due({"email": "a@x.io", "send_immediately": True}, at) == at


def test_an_unknown_timezone_is_refused_and_nothing_written(setup):
    with pytest.raises(InvalidRecipient, match=r"recipient #2: .*Mars/Olympus"):
        notify(
            "order-shipped",
            [{"email": "a@x.io"}, {"email": "b@x.io", "tz": "Mars/Olympus"}],
            CONTEXT,
        )
    assert Message.objects.count() == 0


def test_due_now_inside_the_window_is_queued(setup):
    event, _ = setup
    now = timezone.now()
    start = (now - dt.timedelta(hours=1)).time().replace(microsecond=0)
    end = (now + dt.timedelta(hours=2)).time().replace(microsecond=0)
    window(start.isoformat(), end.isoformat(), event=event)
    (message,) = notify("order-shipped", {"email": "a@x.io", "tz": "UTC"}, CONTEXT).messages
    assert message.status == "queued"


def test_dispatch_puts_back_a_message_outside_the_windows(setup):
    event, _ = setup
    (message,) = notify("order-shipped", {"email": "a@x.io", "tz": "UTC"}, CONTEXT).messages
    now = timezone.now()
    opens = (now + dt.timedelta(hours=3)).replace(second=0, microsecond=0)
    window(
        opens.time().isoformat(), (opens + dt.timedelta(hours=1)).time().isoformat(), event=event
    )

    summary = message_dispatch(message_ids=[message.pk])

    message.refresh_from_db()
    assert summary.as_dict() == {"claimed": 1, "scheduled": 1}
    assert (message.status, message.attempts, message.next_attempt_at) == ("scheduled", 0, opens)
    assert locmem.outbox == []


@pytest.mark.parametrize(("n", "queries"), [(1, 2), (200, 3)])
def test_windows_cost_notify_no_query(n, queries, setup, django_assert_num_queries):
    """Windows come from the catalog: the pinned queries of notify() (the read about its
    recipients, and the write: a COPY above 50 rows, whose ids are read first)."""
    event, channel = setup
    window("02:00", "05:00", event=event)
    window("01:00", "06:00", channel=channel)
    catalog_settled()
    catalog()
    people = [{"email": f"p{n}-{i}@x.io", "tz": "Europe/Berlin"} for i in range(n)]
    with django_assert_num_queries(queries):
        result = notify("order-shipped", people, CONTEXT, scheduled_at=MONDAY)
    assert {m.status for m in result.messages} == {"scheduled"}
