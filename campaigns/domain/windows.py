"""Availability windows: when an event or a channel may deliver, in the recipient's time.

A window is a set of weekdays (0 = Monday … 6 = Sunday) with a start and an end wall-clock
time. It opens on each listed weekday at ``start`` and closes at ``end`` the same day, or the
next day when ``end <= start``: 22:00-02:00 crosses midnight, 09:00-09:00 lasts 24 hours.

A message may be delivered while the recipient's local time lies inside at least one of the
event's windows and at least one of the channel's windows; no windows means "any time". When
the two sets never intersect in any week, the message goes at once rather than never.

Daylight-saving time: wall times are read with zoneinfo.

- A window that *opens* in a spring-forward gap (02:30 on a day that skips 02:00-03:00)
  opens at the first real instant after the gap (03:00).
- A window that *closes* in a gap closes where zoneinfo reads that wall time (fold=0, the
  offset before the change), i.e. as far past the gap as the end lay into it; so a window
  lying wholly in the gap still opens, right after it, instead of vanishing for the day.
- A wall time that occurs twice (a fall-back overlap) means its first occurrence (fold=0).
  A window opens once per listed day.

Everything here is pure except ``windows_for``, which loads the windows of an event and its
channels in one query.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

UTC = dt.UTC
DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(days=7)
#: Days scanned after today for the next opening: a weekly pattern repeats within 7, and a
#: window lasts at most a day; one more day of margin.
HORIZON_DAYS = 8
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ALL_DAYS = frozenset(range(7))
DASH = "\u2013"  # an en dash, between days and between times: "Mon-Fri 09:00-18:00"

Interval = tuple[Any, Any]  # [start, end) of datetimes, or of offsets into a week


def weekdays_validate(value: Any) -> frozenset[int]:
    """The weekdays of a window: a non-empty list of unique ints 0 (Monday) … 6 (Sunday).
    Raises ValueError saying what is wrong."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(f"weekdays must be a list of day numbers 0 to 6, got {value!r}")
    days = list(value)
    if not days:
        raise ValueError("weekdays must name at least one day (0 = Monday … 6 = Sunday)")
    wrong = [day for day in days if isinstance(day, bool) or not isinstance(day, int)]
    wrong += [day for day in days if day not in wrong and not 0 <= day <= 6]
    if wrong:
        raise ValueError(
            f"weekdays are numbers 0 (Monday) … 6 (Sunday); not: {', '.join(map(repr, wrong))}"
        )
    repeated = sorted({day for day in days if days.count(day) > 1})
    if repeated:
        raise ValueError(f"weekdays lists a day twice: {', '.join(map(str, repeated))}")
    return frozenset(days)


class WindowLike(Protocol):
    weekdays: Any
    start_time: dt.time
    end_time: dt.time


@dataclass(frozen=True, slots=True)
class Window:
    """Weekdays and wall-clock times; ``end <= start`` means it closes the next day.

    ``weekdays`` may be given as any iterable of day numbers: it is checked
    (``weekdays_validate``) and kept as a frozenset."""

    weekdays: frozenset[int]
    start: dt.time
    end: dt.time

    def __post_init__(self) -> None:
        object.__setattr__(self, "weekdays", weekdays_validate(self.weekdays))
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, dt.time):
                raise ValueError(f"window {name} must be a datetime.time, got {value!r}")
            if value.tzinfo is not None:
                raise ValueError(f"window {name} is a wall-clock time: no tzinfo ({value})")

    @classmethod
    def from_model(cls, obj: WindowLike) -> Window:
        return cls(obj.weekdays, obj.start_time, obj.end_time)

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    @property
    def length(self) -> dt.timedelta:
        start = dt.datetime.combine(dt.date.min, self.start)
        end = dt.datetime.combine(
            dt.date.min + (DAY if self.crosses_midnight else dt.timedelta()), self.end
        )
        return end - start


# --- timezones -----------------------------------------------------------------------------


def zone_get(name: ZoneInfo | str) -> ZoneInfo:
    """The zone named ``name``; a ValueError naming it when there is no such zone."""
    if isinstance(name, ZoneInfo):
        return name
    if not isinstance(name, str) or not name:
        raise ValueError(f"timezone must be an IANA name like 'Europe/Berlin', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown timezone {name!r}: use an IANA name like 'Europe/Berlin'"
        ) from None


def recipient_timezone(recipient: Mapping[str, Any], *, default: str) -> ZoneInfo:
    """The recipient's ``tz`` when it has one (an unknown one raises ValueError naming it),
    else ``default`` (callers pass the user's stored timezone as ``tz``, and
    ``settings.TIME_ZONE`` as ``default``)."""
    return zone_get(recipient.get("tz") or default)


# --- the next delivery time ----------------------------------------------------------------


def next_delivery_time(
    *,
    now: dt.datetime,
    tz: ZoneInfo | str,
    event_windows: Sequence[Window],
    channel_windows: Sequence[Window],
) -> dt.datetime:
    """The earliest instant ≥ ``now`` (in UTC) at which local time in ``tz`` lies inside one
    of the event's windows and one of the channel's windows (none means "any time"). When
    the two sets never intersect in any week, ``now``: the message goes at once."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    zone = zone_get(tz)
    return _next_delivery_time(
        now.astimezone(UTC), zone, tuple(event_windows), tuple(channel_windows)
    )


def recipient_delivery_time(
    recipient: Mapping[str, Any],
    *,
    now: dt.datetime,
    default_tz: str,
    event_windows: Sequence[Window],
    channel_windows: Sequence[Window],
    send_immediately: bool = False,
) -> dt.datetime:
    """``next_delivery_time`` for one recipient of a fan-out: read in the recipient's
    timezone (``recipient_timezone``), and ``now`` when the call or the recipient says
    ``send_immediately``. The timezone is checked either way, so a bad ``tz`` fails alike
    whether or not the event has windows."""
    zone = recipient_timezone(recipient, default=default_tz)
    if send_immediately or recipient.get("send_immediately"):
        return now.astimezone(UTC)
    return next_delivery_time(
        now=now, tz=zone, event_windows=event_windows, channel_windows=channel_windows
    )


@functools.lru_cache(maxsize=2048)
def _next_delivery_time(
    now: dt.datetime,
    zone: ZoneInfo,
    event_windows: tuple[Window, ...],
    channel_windows: tuple[Window, ...],
) -> dt.datetime:
    # Cached: a fan-out asks the same question for every recipient in the same timezone.
    if not _ever_intersect(event_windows, channel_windows):
        return now
    today = now.astimezone(zone).date()
    # Most messages are due today or tomorrow: look there first. Windows opening on later
    # days open after every opening found so far, so the first one found is the earliest.
    for last in (1, HORIZON_DAYS):
        days = [today + dt.timedelta(days=n) for n in range(-1, last + 1)]
        both = _intersect(
            _openings(event_windows, zone, days), _openings(channel_windows, zone, days)
        )
        for start, end in both:
            if end > now:
                return max(start, now)
    return now  # not reached: an intersection in the week recurs within the horizon


def _openings(windows: tuple[Window, ...], zone: ZoneInfo, days: list[dt.date]) -> list[Interval]:
    """The instants (UTC) at which ``windows`` are open, for windows opening on ``days``;
    no windows means always."""
    if not windows:
        return [(dt.datetime.min.replace(tzinfo=UTC), dt.datetime.max.replace(tzinfo=UTC))]
    return _union(
        [
            _opening(window, zone, day)
            for window in windows
            for day in days
            if day.weekday() in window.weekdays
        ]
    )


@functools.lru_cache(maxsize=8192)
def _opening(window: Window, zone: ZoneInfo, day: dt.date) -> Interval:
    """When ``window`` is open if it opens on ``day``, as UTC instants."""
    end_day = day + DAY if window.crosses_midnight else day
    start = _instant(dt.datetime.combine(day, window.start), zone, opening=True)
    end = _instant(dt.datetime.combine(end_day, window.end), zone, opening=False)
    return start, end


def _instant(wall: dt.datetime, zone: ZoneInfo, *, opening: bool) -> dt.datetime:
    """The UTC instant of a local wall time: its first occurrence when it occurs twice; when
    it does not occur (a gap), the end of the gap for an opening, zoneinfo's fold=0 reading
    for a closing."""
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first <= second or not opening:  # unambiguous, or an overlap (first = fold 0)
        return first
    return _gap_end(zone, before=second, after=first)


def _gap_end(zone: ZoneInfo, *, before: dt.datetime, after: dt.datetime) -> dt.datetime:
    """The instant the offset changes, between ``before`` (old offset) and ``after`` (new
    offset): offsets change on whole seconds, so bisect on seconds."""
    old = before.astimezone(zone).utcoffset()
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if dt.datetime.fromtimestamp(middle, zone).utcoffset() == old:
            low = middle
        else:
            high = middle
    return dt.datetime.fromtimestamp(high, UTC)


def _union(intervals: list[Interval]) -> list[Interval]:
    """Sorted, with overlapping and touching intervals merged."""
    merged: list[list[Any]] = []
    for start, end in sorted(intervals):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def _intersect(first: list[Interval], second: list[Interval]) -> list[Interval]:
    """The intersection of two sorted unions of half-open intervals."""
    result, i, j = [], 0, 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        if start < end:
            result.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return result


@functools.lru_cache(maxsize=256)
def _ever_intersect(event_windows: tuple[Window, ...], channel_windows: tuple[Window, ...]) -> bool:
    """Whether the two sets share any time of the week, on the wall clock (no timezone)."""
    return bool(_intersect(_week(event_windows), _week(channel_windows)))


def _week(windows: tuple[Window, ...]) -> list[Interval]:
    """When ``windows`` are open, as offsets from Monday 00:00 within one week."""
    if not windows:
        return [(dt.timedelta(), WEEK)]
    intervals = []
    for window in windows:
        start_of_day = dt.timedelta(
            hours=window.start.hour,
            minutes=window.start.minute,
            seconds=window.start.second,
            microseconds=window.start.microsecond,
        )
        for day in window.weekdays:
            start = day * DAY + start_of_day
            end = start + window.length
            if end <= WEEK:
                intervals.append((start, end))
            else:  # Sunday into Monday: wrap around
                intervals += [(start, WEEK), (dt.timedelta(), end - WEEK)]
    return _union(intervals)


# --- describing windows --------------------------------------------------------------------


def describe(windows: Sequence[Window]) -> str:
    """A human summary: "Mon-Fri 09:00-18:00; Sat 10:00-14:00", "Fri 22:00-02:00 (next
    day)", "Every day 08:00-20:00", "Mon, Wed, Fri all day"; no windows: "Any time"."""
    if not windows:
        return "Any time"
    return "; ".join(_describe_one(window) for window in windows)


def _describe_one(window: Window) -> str:
    days = _describe_days(window.weekdays)
    if window.start == window.end == dt.time(0):
        return f"{days} all day"
    hours = f"{_clock(window.start)}{DASH}{_clock(window.end)}"
    if window.crosses_midnight:
        hours += " (next day)"
    return f"{days} {hours}"


def _describe_days(weekdays: frozenset[int]) -> str:
    if weekdays == ALL_DAYS:
        return "Every day"
    runs: list[list[int]] = []
    for day in sorted(weekdays):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0]]}{DASH}{DAY_NAMES[run[-1]]}")
        else:
            parts.extend(DAY_NAMES[day] for day in run)
    return ", ".join(parts)


def _clock(value: dt.time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


# --- loading -------------------------------------------------------------------------------


def day_start(moment: dt.datetime) -> dt.datetime:
    """The start of the day (in the current timezone, ``TIME_ZONE``) ``moment`` falls in:
    where the retention cuts, and where the dashboard's day-long windows begin."""
    local = timezone.localtime(moment)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)
