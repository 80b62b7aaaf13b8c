"""Selectors for the admin dashboard: delivery counts and the state of the RQ queues."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone
from redis.exceptions import RedisError
from rq import Worker

from campaigns.models import Message, MessageStatus
from campaigns.outbox.queueing import get_queue

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
    """Five aggregate queries whatever the size of the table."""
    now = now or timezone.now()
    week = now - dt.timedelta(days=7)
    per_channel: dict[str, dict[str, Any]] = {}
    rows = (
        Message.objects.filter(created_at__gte=week)
        .values("channel__name", "status")
        .annotate(n=Count("id"))
        .order_by("channel__name")
    )
    for row in rows:
        entry = per_channel.setdefault(row["channel__name"], defaultdict(int))
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
            series[key][row["day"]] = row["n"]
    day_list = [first_day + dt.timedelta(days=i) for i in range(days)]
    return DeliveryStats(
        last_24h=_by_status(now - dt.timedelta(hours=24)),
        last_7d=_by_status(week),
        by_channel=[{"channel": name, **counts} for name, counts in per_channel.items()],
        days=day_list,
        sent_per_day=[series["sent"][d] for d in day_list],
        failed_per_day=[series["failed"][d] for d in day_list],
    )


@dataclass(frozen=True, slots=True)
class QueueStats:
    reachable: bool
    queued: int = 0
    started: int = 0
    failed: int = 0
    workers: int = 0
    error: str = ""


def queue_stats() -> QueueStats:
    try:
        queue = get_queue()
        return QueueStats(
            reachable=True,
            queued=queue.count,
            started=queue.started_job_registry.count,
            failed=queue.failed_job_registry.count,
            workers=Worker.count(queue=queue),
        )
    except RedisError as error:
        return QueueStats(reachable=False, error=str(error))
