"""Digests: an event's occurrences for one recipient on one channel, within a window (every
15 minutes, hourly, daily at a local time of day), collapse into one message. Pure: the
windows and keys; ``campaigns.outbox.digests`` writes them."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any
from zoneinfo import ZoneInfo

from django.db import models

UTC = dt.UTC


class Frequency(models.TextChoices):
    IMMEDIATELY = "immediately", "Immediately"
    QUARTER_HOUR = "15min", "Every 15 minutes"
    HOURLY = "hourly", "Hourly"
    DAILY = "daily", "Daily"


#: What a person may choose in the preference centre, where the event allows it.
CHOOSABLE = (Frequency.IMMEDIATELY, Frequency.HOURLY, Frequency.DAILY)
_MINUTES = {Frequency.QUARTER_HOUR: 15, Frequency.HOURLY: 60}
KEY_LENGTH = 300


def digest_window(
    frequency: str, *, at: dt.datetime, tz: dt.tzinfo, daily_at: dt.time
) -> tuple[dt.datetime, dt.datetime]:
    """(start, end), in UTC, of the window of ``frequency`` that holds ``at``: a quarter or a
    whole hour of the recipient's clock (``tz``), or the day that ends at ``daily_at`` in
    their timezone. ``end`` is when the digest is due."""
    local = at.astimezone(tz)
    if frequency == Frequency.DAILY:
        end = dt.datetime.combine(local.date(), daily_at, tzinfo=tz)
        if end <= local:
            end = dt.datetime.combine(local.date() + dt.timedelta(days=1), daily_at, tzinfo=tz)
        start = dt.datetime.combine(end.date() - dt.timedelta(days=1), daily_at, tzinfo=tz)
        return start.astimezone(UTC), end.astimezone(UTC)
    minutes = _MINUTES[frequency]
    start = local.replace(minute=local.minute - local.minute % minutes, second=0, microsecond=0)
    start = start.astimezone(UTC)  # the arithmetic in UTC: an hour is an hour across DST
    return start, start + dt.timedelta(minutes=minutes)


def digest_key(*, event_id: int, channel_id: int, identity: str, end: dt.datetime) -> str:
    """The key of one window's digest for one recipient (``identity``: ``u<user id>``, or
    their address) on one channel: at most one active message has it."""
    key = f"digest:{event_id}:{channel_id}:{int(end.timestamp())}:{identity}"
    if len(key) > KEY_LENGTH:  # a long address: its hash keeps the key unique
        digest = hashlib.sha256(identity.encode()).hexdigest()
        key = f"digest:{event_id}:{channel_id}:{int(end.timestamp())}:sha256:{digest}"
    return key


def digest_context(items: list[dict[str, Any]]) -> dict[str, Any]:
    """What a digest's template gets as ``digest``: each occurrence's context, oldest first,
    and how many there are."""
    return {"items": items, "count": len(items)}


def digest_sample(context: dict[str, Any]) -> dict[str, Any]:
    """A sample ``digest`` for previews: the sample context three times."""
    return digest_context([dict(context) for _ in range(3)])


def zone(name: str | None, default: str) -> dt.tzinfo:
    return ZoneInfo(name or default)
