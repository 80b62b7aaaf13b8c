"""Reads of the outbox; none of them writes. Delivery counts for the dashboard, a user's and a
content object's messages, the availability windows of an event and its channels, and which
campaigns hold their messages back."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from campaigns.domain.windows import Window, day_start
from campaigns.models import (
    AvailabilityWindow,
    Campaign,
    CampaignStatus,
    Message,
    MessageDayCount,
    MessageRelatedObject,
    MessageStatus,
)
from channels.models import ChannelConfig

SHOWN = (
    MessageStatus.SENT,
    MessageStatus.FAILED,
    MessageStatus.RETRYING,
    MessageStatus.SCHEDULED,
    MessageStatus.QUEUED,
    MessageStatus.CANCELLED,
)


@dataclass(slots=True)
class DeliveryStats:
    last_24h: dict[str, int]
    last_7d: dict[str, int]
    by_channel: list[dict[str, Any]]  # 7 days: {"channel": name, status: count, …}
    days: list[dt.date] = field(default_factory=list)
    sent_per_day: list[int] = field(default_factory=list)
    failed_per_day: list[int] = field(default_factory=list)


def _by_status(since: dt.datetime) -> dict[str, int]:
    rows = (
        Message.objects.filter(created_at__gte=since)
        .values("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = {status.value: 0 for status in SHOWN}
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts


def delivery_stats(*, now: dt.datetime | None = None, days: int = 14) -> DeliveryStats:
    """Six aggregate queries whatever the size of the table: five over the live messages, one
    over the daily counts of those the retention deleted (``MessageDayCount``), added in, so
    no total drops after a purge. The week is the last 7 days, today included, from the start
    of the day (the retention deletes whole days); the last 24 hours hold nothing it
    deletes (it keeps at least a day)."""
    now = now or timezone.now()
    week = day_start(now - dt.timedelta(days=6))
    per_channel: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    rows = (
        Message.objects.filter(created_at__gte=week)
        .values("channel__key", "channel__name", "status")
        .annotate(n=Count("id"))
        .order_by("channel__name")
    )
    for row in rows:
        names[row["channel__key"]] = row["channel__name"]
        entry = per_channel.setdefault(row["channel__key"], defaultdict(int))
        entry[row["status"]] += row["n"]
    first_day = (now - dt.timedelta(days=days - 1)).date()
    series = {"sent": defaultdict(int), "failed": defaultdict(int)}
    for key, status, date_field in (
        ("sent", MessageStatus.SENT, "sent_at"),
        ("failed", MessageStatus.FAILED, "updated_at"),
    ):
        for row in (
            Message.objects.filter(status=status, **{f"{date_field}__date__gte": first_day})
            .annotate(day=TruncDate(date_field))
            .values("day")
            .annotate(n=Count("id"))
            .order_by()
        ):
            series[key][row["day"]] += row["n"]
    last_7d = _by_status(week)
    for day, done_day, channel, name, status, n in _purged_counts(
        since=week.date(), first_day=first_day
    ):
        if day >= week.date():
            names.setdefault(channel, name or channel)
            per_channel.setdefault(channel, defaultdict(int))[status] += n
            last_7d[status] = last_7d.get(status, 0) + n
        if status == MessageStatus.SENT and done_day >= first_day:
            series["sent"][done_day] += n
        elif status == MessageStatus.FAILED and done_day >= first_day:
            series["failed"][done_day] += n
    day_list = [first_day + dt.timedelta(days=i) for i in range(days)]
    return DeliveryStats(
        last_24h=_by_status(now - dt.timedelta(hours=24)),
        last_7d=last_7d,
        by_channel=[
            {"channel": names[key], **counts}
            for key, counts in sorted(per_channel.items(), key=lambda item: names[item[0]])
        ],
        days=day_list,
        sent_per_day=[series["sent"][d] for d in day_list],
        failed_per_day=[series["failed"][d] for d in day_list],
    )


def _purged_counts(*, since: dt.date, first_day: dt.date) -> list[tuple]:
    """(day, done day, channel key, channel name or None, status, count) of the deleted
    messages written since ``since``, or sent or failed since ``first_day``: one query."""
    return list(
        MessageDayCount.objects.filter(
            Q(day__gte=since)
            | Q(
                done_day__gte=first_day,
                status__in=[MessageStatus.SENT, MessageStatus.FAILED],
            )
        )
        .annotate(
            name=Subquery(ChannelConfig.objects.filter(key=OuterRef("channel")).values("name")[:1])
        )
        .values_list("day", "done_day", "channel", "name", "status")
        .annotate(n=Sum("count"))
        .order_by()
    )


def messages_for_user(user) -> QuerySet[Message]:
    """A user's messages, newest first (``user.notifications`` holds the same)."""
    return Message.objects.filter(user=user).order_by("-created_at", "-id")


def messages_for_content(obj: models.Model) -> QuerySet[Message]:
    """Messages about ``obj``: as their content, or among their related objects."""
    content_type = ContentType.objects.get_for_model(obj)
    related = MessageRelatedObject.objects.filter(
        content_type=content_type, object_id=str(obj.pk)
    ).values("message_id")
    return Message.objects.filter(
        Q(content_type=content_type, object_id=str(obj.pk)) | Q(pk__in=related)
    ).order_by("-created_at", "-id")


def windows_for(
    *, event_id: int, channel_ids: Iterable[int]
) -> tuple[list[Window], dict[int, list[Window]]]:
    """The windows of an event, and of each of the given channels (every id is a key, with
    an empty list when the channel has none), in one query."""
    channel_ids = list(dict.fromkeys(channel_ids))
    event_windows: list[Window] = []
    by_channel: dict[int, list[Window]] = defaultdict(list)
    rows = (
        AvailabilityWindow.objects.filter(Q(event_id=event_id) | Q(channel_id__in=channel_ids))
        .order_by("start_time", "id")
        .values_list("event_id", "channel_id", "weekdays", "start_time", "end_time")
    )
    for row_event_id, channel_id, weekdays, start, end in rows:
        window = Window(weekdays, start, end)
        if row_event_id is not None:
            event_windows.append(window)
        else:
            by_channel[channel_id].append(window)
    return event_windows, {channel_id: by_channel[channel_id] for channel_id in channel_ids}


def campaigns_holding(campaign_ids: Iterable[int]) -> dict[int, str]:
    """{campaign id: "paused" | "cancelled"} among these: a dispatch batch asks before each
    message it sends (at most every few hundred milliseconds)."""
    ids = {i for i in campaign_ids if i}
    if not ids:
        return {}
    return dict(
        Campaign.objects.filter(
            pk__in=ids, status__in=[CampaignStatus.PAUSED, CampaignStatus.CANCELLED]
        ).values_list("pk", "status")
    )
