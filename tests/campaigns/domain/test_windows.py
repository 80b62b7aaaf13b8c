"""Availability windows: the next delivery time in the recipient's timezone, the model, and
loading windows for a fan-out.

Every expected instant is worked out in the comment beside it from the inputs: the local
wall time, the zone's offset on that date, and the window."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from campaigns.domain.windows import (
    Window,
    describe,
    next_delivery_time,
    recipient_delivery_time,
    recipient_timezone,
)
from campaigns.models import AvailabilityWindow
from campaigns.outbox.selectors import windows_for
from tests.factories import ChannelFactory, EventFactory

UTC = dt.UTC
EVERY_DAY = frozenset(range(7))
MON_FRI = frozenset(range(5))
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def window(start: str, end: str, days=EVERY_DAY) -> Window:
    return Window(frozenset(days), dt.time.fromisoformat(start), dt.time.fromisoformat(end))


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def en(text: str) -> str:
    """``text`` with its hyphens as en dashes, as describe() writes ranges."""
    return text.replace("-", "\u2013")


def due(now, *, tz="UTC", event=(), channel=()) -> dt.datetime:
    return next_delivery_time(now=now, tz=tz, event_windows=event, channel_windows=channel)


# --- the examples ------------------------------------------------------------------

# 2026-06-10 is a Wednesday.


def test_before_the_window_it_is_due_when_the_window_opens():
    # 01:00 UTC, window 02:00-05:00 UTC: it opens an hour later, the same day.
    assert due(utc(2026, 6, 10, 1, 0), event=[window("02:00", "05:00")]) == utc(2026, 6, 10, 2)


def test_after_the_window_it_is_due_tomorrow_when_the_window_opens():
    # 16:00 UTC: today's 02:00-05:00 is over, tomorrow's opens at 02:00.
    assert due(utc(2026, 6, 10, 16), event=[window("02:00", "05:00")]) == utc(2026, 6, 11, 2)


def test_a_recipient_already_inside_the_window_is_due_now():
    # The same 01:00 UTC is 03:00 in Berlin (CEST, UTC+2): inside 02:00-05:00 local.
    now = utc(2026, 6, 10, 1, 0)
    assert due(now, tz="Europe/Berlin", event=[window("02:00", "05:00")]) == now


def test_the_result_is_in_utc_whatever_the_zone_of_now():
    now = dt.datetime(2026, 6, 10, 3, 0, tzinfo=BERLIN)  # 01:00 UTC
    result = due(now, tz="UTC", event=[window("02:00", "05:00")])
    assert result == utc(2026, 6, 10, 2)
    assert result.utcoffset() == dt.timedelta(0)
    assert result.tzinfo is UTC


def test_no_windows_at_all_means_now():
    now = utc(2026, 6, 10, 16, 17, 18)
    assert due(now) == now


def test_inside_the_window_at_its_exact_start_is_now_and_at_its_end_is_not():
    w = [window("02:00", "05:00")]
    assert due(utc(2026, 6, 10, 2), event=w) == utc(2026, 6, 10, 2)
    assert due(utc(2026, 6, 10, 5), event=w) == utc(2026, 6, 11, 2)  # [start, end)


# --- crossing midnight, weekdays ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 6, 10, 12), utc(2026, 6, 10, 22)),  # before tonight's opening
        (utc(2026, 6, 10, 23, 30), utc(2026, 6, 10, 23, 30)),  # open, before midnight
        (utc(2026, 6, 11, 1, 30), utc(2026, 6, 11, 1, 30)),  # open, after midnight
        (utc(2026, 6, 11, 2), utc(2026, 6, 11, 22)),  # closed at 02:00
    ],
)
def test_a_window_crossing_midnight(now, expected):
    assert due(now, channel=[window("22:00", "02:00")]) == expected


def test_a_friday_night_window_stays_open_into_saturday_morning():
    friday_night = [window("22:00", "02:00", days={4})]
    # Saturday 2026-06-13 01:00: Friday's window is still open.
    assert due(utc(2026, 6, 13, 1), event=friday_night) == utc(2026, 6, 13, 1)
    # Saturday 03:00: closed; next Friday is 2026-06-19.
    assert due(utc(2026, 6, 13, 3), event=friday_night) == utc(2026, 6, 19, 22)


def test_equal_start_and_end_is_open_for_24_hours():
    monday = [window("09:00", "09:00", days={0})]
    # Monday 2026-06-15 09:00 until Tuesday 09:00.
    assert due(utc(2026, 6, 16, 8, 59), event=monday) == utc(2026, 6, 16, 8, 59)
    assert due(utc(2026, 6, 16, 9), event=monday) == utc(2026, 6, 22, 9)


def test_friday_evening_waits_for_monday_morning():
    # Friday 2026-06-12 19:00, Mon-Fri 09:00-18:00: Monday 2026-06-15 09:00.
    office = [window("09:00", "18:00", days=MON_FRI)]
    assert due(utc(2026, 6, 12, 19), event=office) == utc(2026, 6, 15, 9)
    # And on Saturday and Sunday too.
    assert due(utc(2026, 6, 14, 10), event=office) == utc(2026, 6, 15, 9)


def test_a_window_once_a_week_just_after_it_closed_is_due_a_week_later():
    # Monday 2026-06-15 10:00, window Mon 09:00-10:00: next Monday 2026-06-22 09:00.
    assert due(utc(2026, 6, 15, 10), event=[window("09:00", "10:00", days={0})]) == utc(
        2026, 6, 22, 9
    )


def test_the_earliest_of_several_windows():
    windows = [window("18:00", "20:00"), window("07:00", "08:00")]
    assert due(utc(2026, 6, 10, 9), event=windows) == utc(2026, 6, 10, 18)
    assert due(utc(2026, 6, 10, 21), event=windows) == utc(2026, 6, 11, 7)


# --- event ∩ channel -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2026, 6, 10, 7), utc(2026, 6, 10, 10)),  # event opens at 08, channel at 10
        (utc(2026, 6, 10, 11), utc(2026, 6, 10, 11)),  # inside both
        (utc(2026, 6, 10, 12), utc(2026, 6, 11, 10)),  # the event closed at 12
        (utc(2026, 6, 10, 9), utc(2026, 6, 10, 10)),  # inside the event's only
    ],
)
def test_delivery_waits_for_both_the_event_and_the_channel_window(now, expected):
    event = [window("08:00", "12:00")]
    channel = [window("10:00", "18:00")]
    assert due(now, event=event, channel=channel) == expected


def test_the_intersection_respects_weekdays_of_both():
    # Event Mon-Fri, channel only Friday and Saturday: Wednesday waits for Friday 2026-06-12.
    event = [window("09:00", "17:00", days=MON_FRI)]
    channel = [window("12:00", "20:00", days={4, 5})]
    assert due(utc(2026, 6, 10, 13), event=event, channel=channel) == utc(2026, 6, 12, 12)


def test_the_intersection_with_a_window_crossing_midnight():
    # Event 22:00-06:00, channel 05:00-09:00: both open 05:00-06:00.
    event = [window("22:00", "06:00")]
    channel = [window("05:00", "09:00")]
    assert due(utc(2026, 6, 10, 23), event=event, channel=channel) == utc(2026, 6, 11, 5)
    assert due(utc(2026, 6, 11, 5, 30), event=event, channel=channel) == utc(2026, 6, 11, 5, 30)


def test_a_sunday_night_window_meets_a_monday_window_across_the_week_end():
    # Sun 22:00-02:00 and Mon 01:00-05:00 share Monday 01:00-02:00. From Wednesday
    # 2026-06-10, the next is Monday 2026-06-15 01:00.
    event = [window("22:00", "02:00", days={6})]
    channel = [window("01:00", "05:00", days={0})]
    assert due(utc(2026, 6, 10, 12), event=event, channel=channel) == utc(2026, 6, 15, 1)


@pytest.mark.parametrize(
    ("event", "channel"),
    [
        ([window("09:00", "12:00")], [window("13:00", "17:00")]),  # hours apart
        ([window("09:00", "12:00")], [window("12:00", "15:00")]),  # touching: [09, 12) ∩ [12, 15)
        ([window("09:00", "17:00", days={0})], [window("09:00", "17:00", days={1})]),  # days apart
        ([window("22:00", "02:00", days={4})], [window("03:00", "08:00", days={5})]),
    ],
)
def test_windows_that_never_intersect_send_at_once(event, channel):
    now = utc(2026, 6, 10, 20, 15)
    assert due(now, event=event, channel=channel) == now
    assert due(now, tz="Asia/Tokyo", event=event, channel=channel) == now


def test_windows_that_never_meet_do_not_meet_on_a_spring_forward_day_either():
    # 02:10-02:20 and 02:20-02:40 never overlap on the wall clock: send at once, even the
    # day before 2026-03-29, when both would open at the end of Berlin's gap (03:00 CEST).
    now = utc(2026, 3, 28, 12)
    event = [window("02:10", "02:20")]
    channel = [window("02:20", "02:40")]
    assert due(now, tz="Europe/Berlin", event=event, channel=channel) == now


def test_only_channel_windows_apply_when_the_event_has_none():
    assert due(utc(2026, 6, 10, 7), channel=[window("10:00", "18:00")]) == utc(2026, 6, 10, 10)


# --- timezones -----------------------------------------------------------------------------


def test_tokyo_and_los_angeles_get_different_times_for_the_same_moment():
    now = utc(2026, 6, 10, 0, 0)
    office = [window("09:00", "17:00")]
    # Tokyo (UTC+9, no DST): 09:00 local, just opened: now.
    assert due(now, tz="Asia/Tokyo", event=office) == now
    # Los Angeles (PDT, UTC-7): 17:00 on the 9th, just closed: 09:00 PDT on the 10th = 16:00 UTC.
    assert due(now, tz="America/Los_Angeles", event=office) == utc(2026, 6, 10, 16)


def test_tz_accepts_a_zoneinfo():
    assert due(utc(2026, 1, 10, 6), tz=BERLIN, event=[window("09:00", "10:00")]) == utc(
        2026,
        1,
        10,
        8,  # 09:00 CET (UTC+1)
    )


def test_an_unknown_timezone_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="Mars/Olympus_Mons"):
        due(utc(2026, 6, 10), tz="Mars/Olympus_Mons", event=[window("09:00", "10:00")])
    with pytest.raises(ValueError, match="'Europe'"):  # a directory of zones, not a zone
        due(utc(2026, 6, 10), tz="Europe")


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        due(dt.datetime(2026, 6, 10, 1), event=[window("02:00", "05:00")])


def test_recipient_timezone_prefers_the_recipients_tz():
    assert recipient_timezone({"tz": "Asia/Tokyo"}, default="Europe/Berlin") == ZoneInfo(
        "Asia/Tokyo"
    )
    assert recipient_timezone({"email": "a@example.com"}, default="Europe/Berlin") == BERLIN
    assert recipient_timezone({"tz": ""}, default="Europe/Berlin") == BERLIN
    assert recipient_timezone({"tz": None}, default="Europe/Berlin") == BERLIN


def test_recipient_timezone_names_an_unknown_tz():
    with pytest.raises(ValueError, match="Nowhere/Town"):
        recipient_timezone({"tz": "Nowhere/Town"}, default="UTC")
    with pytest.raises(ValueError, match="Not/A_Site_Zone"):
        recipient_timezone({}, default="Not/A_Site_Zone")


# --- send_immediately ----------------------------------------------------------------------


def test_send_immediately_on_the_recipient_or_the_call_bypasses_windows():
    now = utc(2026, 6, 10, 16)  # outside 02:00-05:00
    windows = {"event_windows": [window("02:00", "05:00")], "channel_windows": []}
    assert recipient_delivery_time({}, now=now, default_tz="UTC", **windows) == utc(2026, 6, 11, 2)
    assert (
        recipient_delivery_time({"send_immediately": True}, now=now, default_tz="UTC", **windows)
        == now
    )
    assert (
        recipient_delivery_time({}, now=now, default_tz="UTC", send_immediately=True, **windows)
        == now
    )


def test_recipient_delivery_time_reads_the_recipients_tz():
    now = utc(2026, 6, 10, 1, 0)  # 03:00 in Berlin, 10:00 in Tokyo
    windows = {"event_windows": [window("02:00", "05:00")], "channel_windows": []}
    assert (
        recipient_delivery_time({"tz": "Europe/Berlin"}, now=now, default_tz="UTC", **windows)
        == now
    )
    # Tokyo: 02:00 JST on the 11th = 17:00 UTC on the 10th.
    assert recipient_delivery_time(
        {"tz": "Asia/Tokyo"}, now=now, default_tz="UTC", **windows
    ) == utc(2026, 6, 10, 17)
    # No tz: the default, here UTC: 02:00 UTC.
    assert recipient_delivery_time({}, now=now, default_tz="UTC", **windows) == utc(2026, 6, 10, 2)
    with pytest.raises(ValueError, match="Atlantis/Capital"):
        recipient_delivery_time(
            {"tz": "Atlantis/Capital", "send_immediately": True},
            now=now,
            default_tz="UTC",
            **windows,
        )


# --- daylight-saving time ------------------------------------------------------------------

# Europe/Berlin, Sunday 2026-03-29: at 01:00 UTC, 02:00 CET (UTC+1) jumps to 03:00 CEST (UTC+2);
# local 02:00-03:00 does not exist.
# Europe/Berlin, Sunday 2026-10-25: at 01:00 UTC, 03:00 CEST falls back to 02:00 CET;
# local 02:00-03:00 happens twice (00:00-01:00 UTC, then 01:00-02:00 UTC).
# America/New_York, Sunday 2026-03-08: at 07:00 UTC, 02:00 EST (UTC-5) jumps to 03:00 EDT (UTC-4).
# America/New_York, Sunday 2026-11-01: at 06:00 UTC, 02:00 EDT falls back to 01:00 EST;
# local 01:00-02:00 happens twice (05:00-06:00 UTC, then 06:00-07:00 UTC).


def test_spring_forward_does_not_shift_the_next_days_opening():
    # Saturday 19:00 CET; window 09:00-17:00 opens Sunday 09:00 CEST = 07:00 UTC (24 hours
    # after Saturday's 09:00 CET, 08:00 UTC, would be 10:00 local).
    now = utc(2026, 3, 28, 18)
    assert due(now, tz="Europe/Berlin", event=[window("09:00", "17:00")]) == utc(2026, 3, 29, 7)


def test_fall_back_does_not_shift_the_next_days_opening():
    # Saturday 20:00 CEST; window 09:00-17:00 opens Sunday 09:00 CET = 08:00 UTC.
    now = utc(2026, 10, 24, 18)
    assert due(now, tz="Europe/Berlin", event=[window("09:00", "17:00")]) == utc(2026, 10, 25, 8)


def test_a_window_opening_in_the_spring_forward_gap_opens_when_the_gap_ends():
    # 02:30 does not exist on 2026-03-29: the window opens at 03:00 CEST = 01:00 UTC.
    now = utc(2026, 3, 29, 0)  # 01:00 CET
    assert due(now, tz="Europe/Berlin", event=[window("02:30", "05:00")]) == utc(2026, 3, 29, 1)


def test_a_window_wholly_inside_the_spring_forward_gap_still_opens_that_day():
    # 02:00-02:30 does not exist on 2026-03-29: it opens at 03:00 CEST = 01:00 UTC rather
    # than being lost until Monday 02:00 CEST (00:00 UTC), and stays open its half hour.
    gap_window = [window("02:00", "02:30")]
    assert due(utc(2026, 3, 29, 0, 30), tz="Europe/Berlin", event=gap_window) == utc(2026, 3, 29, 1)
    assert due(utc(2026, 3, 29, 1, 29), tz="Europe/Berlin", event=gap_window) == utc(
        2026, 3, 29, 1, 29
    )
    assert due(utc(2026, 3, 29, 1, 30), tz="Europe/Berlin", event=gap_window) == utc(2026, 3, 30, 0)


def test_a_window_spanning_the_spring_forward_gap_stays_open_across_it():
    # 01:00-05:00 local: 00:00 UTC (01:00 CET) to 03:00 UTC (05:00 CEST).
    w = [window("01:00", "05:00")]
    assert due(utc(2026, 3, 29, 0, 59), tz="Europe/Berlin", event=w) == utc(2026, 3, 29, 0, 59)
    assert due(utc(2026, 3, 29, 1, 0), tz="Europe/Berlin", event=w) == utc(2026, 3, 29, 1, 0)
    assert due(utc(2026, 3, 29, 3, 0), tz="Europe/Berlin", event=w) == utc(2026, 3, 29, 23)


def test_a_window_opening_in_the_fall_back_overlap_opens_at_its_first_occurrence():
    # 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET): the first counts.
    now = utc(2026, 10, 24, 23)  # 01:00 CEST
    assert due(now, tz="Europe/Berlin", event=[window("02:30", "05:00")]) == utc(
        2026, 10, 25, 0, 30
    )


def test_the_repeated_hour_is_inside_a_window_that_spans_it():
    # 02:00-05:00 local on 2026-10-25 runs from 00:00 UTC (02:00 CEST) to 04:00 UTC (05:00
    # CET): four real hours. 01:30 UTC is 02:30 CET, the second 02:30: inside.
    w = [window("02:00", "05:00")]
    assert due(utc(2026, 10, 25, 1, 30), tz="Europe/Berlin", event=w) == utc(2026, 10, 25, 1, 30)
    assert due(utc(2026, 10, 25, 3, 59), tz="Europe/Berlin", event=w) == utc(2026, 10, 25, 3, 59)
    # 04:00 UTC is 05:00 CET: closed; Monday 02:00 CET = 01:00 UTC.
    assert due(utc(2026, 10, 25, 4), tz="Europe/Berlin", event=w) == utc(2026, 10, 26, 1)


def test_new_york_spring_forward():
    # 02:00-04:00 on 2026-03-08: 02:00 EST does not exist; it opens at 03:00 EDT = 07:00 UTC.
    now = utc(2026, 3, 8, 5)  # 00:00 EST
    assert due(now, tz="America/New_York", event=[window("02:00", "04:00")]) == utc(2026, 3, 8, 7)
    # The next day's 09:00 is 09:00 EDT = 13:00 UTC (it was 14:00 UTC the day before).
    office = [window("09:00", "17:00")]
    assert due(utc(2026, 3, 7, 23), tz=NEW_YORK, event=office) == utc(2026, 3, 8, 13)


def test_new_york_fall_back():
    # 01:30-02:00 on 2026-11-01 happens twice: the first, 01:30 EDT = 05:30 UTC, counts.
    now = utc(2026, 11, 1, 4)  # 00:00 EDT
    assert due(now, tz="America/New_York", event=[window("01:30", "02:00")]) == utc(
        2026, 11, 1, 5, 30
    )
    # The next day's 09:00 is 09:00 EST = 14:00 UTC (it was 13:00 UTC the day before).
    office = [window("09:00", "17:00")]
    assert due(utc(2026, 10, 31, 22), tz=NEW_YORK, event=office) == utc(2026, 11, 1, 14)


def test_an_event_and_a_channel_window_still_meet_on_the_spring_forward_day():
    # Event 01:30-02:15, channel 02:00-02:45: they share 02:00-02:15, which 2026-03-29 skips.
    # The channel opens at 03:00 CEST (01:00 UTC); the event closes a quarter past the gap
    # (03:15 CEST): the message goes at 01:00 UTC that day, not a day later.
    event = [window("01:30", "02:15")]
    channel = [window("02:00", "02:45")]
    now = utc(2026, 3, 29, 0)
    assert due(now, tz="Europe/Berlin", event=event, channel=channel) == utc(2026, 3, 29, 1)


# --- describe ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("windows", "expected"),
    [
        ([window("09:00", "18:00", days=MON_FRI)], en("Mon-Fri 09:00-18:00")),
        ([window("09:00", "18:00", days={0, 2, 4})], en("Mon, Wed, Fri 09:00-18:00")),
        ([window("08:00", "20:00")], en("Every day 08:00-20:00")),
        ([window("22:00", "02:00", days={4})], en("Fri 22:00-02:00 (next day)")),
        ([window("00:00", "00:00", days={5, 6})], "Sat, Sun all day"),
        ([window("09:00", "09:00", days={0})], en("Mon 09:00-09:00 (next day)")),
        ([window("09:00", "12:00", days={0, 1, 2, 4})], en("Mon-Wed, Fri 09:00-12:00")),
        ([window("09:30", "17:45:30", days={3})], en("Thu 09:30-17:45:30")),
        (
            [window("09:00", "18:00", days=MON_FRI), window("10:00", "14:00", days={5})],
            en("Mon-Fri 09:00-18:00; Sat 10:00-14:00"),
        ),
        ([], "Any time"),
    ],
)
def test_describe(windows, expected):
    assert describe(windows) == expected


# --- Window --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weekdays", "message"),
    [
        ([], "at least one day"),
        ([0, 7], "not: 7"),
        ([-1], "not: -1"),
        ([1, 1], "twice: 1"),
        ([True], "not: True"),
        (["mon"], "not: 'mon'"),
        ("0123", "must be a list"),
        (None, "must be a list"),
    ],
)
def test_window_refuses_bad_weekdays(weekdays, message):
    with pytest.raises(ValueError, match=message):
        Window(weekdays, dt.time(9), dt.time(10))


def test_window_keeps_weekdays_as_a_frozenset():
    assert Window([4, 0], dt.time(9), dt.time(10)).weekdays == frozenset({0, 4})


# --- the model (PostgreSQL) ----------------------------------------------------------------


@pytest.mark.django_db
def test_model_defaults_to_every_day_and_describes_itself():
    row = AvailabilityWindow.objects.create(
        event=EventFactory(), start_time=dt.time(22), end_time=dt.time(2)
    )
    row.refresh_from_db()
    assert row.weekdays == [0, 1, 2, 3, 4, 5, 6]
    assert str(row) == en("Every day 22:00-02:00 (next day)")
    assert Window.from_model(row) == window("22:00", "02:00")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("weekdays", "message"),
    [([], "at least one day"), ([0, 9], "not: 9"), ([2, 2], "twice: 2"), ("weekdays", "list")],
)
def test_model_clean_validates_weekdays(weekdays, message):
    row = AvailabilityWindow(
        channel=ChannelFactory(), weekdays=weekdays, start_time=dt.time(9), end_time=dt.time(17)
    )
    with pytest.raises(ValidationError) as error:
        row.full_clean()
    assert list(error.value.message_dict) == ["weekdays"]
    assert message in error.value.message_dict["weekdays"][0]


@pytest.mark.django_db
def test_model_clean_sorts_weekdays():
    row = AvailabilityWindow(
        channel=ChannelFactory(), weekdays=[4, 0, 2], start_time=dt.time(9), end_time=dt.time(17)
    )
    row.full_clean()
    assert row.weekdays == [0, 2, 4]


@pytest.mark.django_db
@pytest.mark.parametrize("owners", ["both", "neither"])
def test_a_window_belongs_to_exactly_one_of_event_and_channel(owners):
    event, channel = EventFactory(), ChannelFactory()
    fields = {"event": event, "channel": channel} if owners == "both" else {}
    row = AvailabilityWindow(start_time=dt.time(9), end_time=dt.time(17), **fields)
    with pytest.raises(ValidationError, match="exactly one"):
        row.full_clean()
    with (
        pytest.raises(IntegrityError, match="availability_window_event_xor_channel"),
        transaction.atomic(),
    ):
        row.save()
    assert not AvailabilityWindow.objects.exists()


@pytest.mark.django_db
def test_windows_go_with_their_event_and_channel():
    event, channel = EventFactory(), ChannelFactory()
    AvailabilityWindow.objects.create(event=event, start_time=dt.time(9), end_time=dt.time(17))
    AvailabilityWindow.objects.create(channel=channel, start_time=dt.time(9), end_time=dt.time(17))
    assert event.windows.count() == 1
    assert channel.windows.count() == 1
    event.delete()
    channel.delete()
    assert not AvailabilityWindow.objects.exists()


# --- windows_for ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_windows_for_loads_the_event_and_its_channels_in_one_query(django_assert_num_queries):
    event, other_event = EventFactory(), EventFactory()
    email, sms, push, unused = (ChannelFactory() for _ in range(4))
    make = AvailabilityWindow.objects.create
    make(event=event, weekdays=[0, 1, 2, 3, 4], start_time=dt.time(9), end_time=dt.time(18))
    make(event=event, weekdays=[5], start_time=dt.time(8), end_time=dt.time(12))
    make(event=other_event, start_time=dt.time(1), end_time=dt.time(2))
    make(channel=email, start_time=dt.time(22), end_time=dt.time(2))
    make(channel=sms, weekdays=[0], start_time=dt.time(10), end_time=dt.time(11))
    make(channel=sms, weekdays=[1], start_time=dt.time(7), end_time=dt.time(8))
    make(channel=unused, start_time=dt.time(3), end_time=dt.time(4))

    with django_assert_num_queries(1):
        event_windows, channel_windows = windows_for(
            event_id=event.pk, channel_ids=[email.pk, sms.pk, push.pk]
        )

    assert event_windows == [  # by start time
        window("08:00", "12:00", days={5}),
        window("09:00", "18:00", days=MON_FRI),
    ]
    assert channel_windows == {
        email.pk: [window("22:00", "02:00")],
        sms.pk: [window("07:00", "08:00", days={1}), window("10:00", "11:00", days={0})],
        push.pk: [],
    }


@pytest.mark.django_db
def test_windows_for_an_event_without_windows_and_no_channels(django_assert_num_queries):
    event = EventFactory()
    with django_assert_num_queries(1):
        assert windows_for(event_id=event.pk, channel_ids=iter(())) == ([], {})
