"""Retention: finished messages, their delivery log and the decision trail are kept a
configured number of days, then deleted (or, for messages, stripped of their content), by an
hourly cron job (``campaigns.jobs.retention``) and ``manage.py notifier_retention``.

What makes it safe beside the send path:

- only rows in a FINAL state (``domain.states``), which no worker claims, are touched; the
  unread items of an inbox are kept (``INBOX_RETENTION_DAYS``);
- each batch is one short transaction: its ids are read ``FOR UPDATE SKIP LOCKED`` (a row
  someone holds is left for the next run, never waited for), at most ``RETENTION_BATCH`` of
  them, then counted into ``MessageDayCount`` and deleted by id; a claim, a dispatch or the
  sweep never wait for a purge, which takes none of the rows they can take;
- the counts of the deleted messages are added, in the same transaction, to the per-day
  table the dashboard and the campaign reports add to the live rows, so no total drops.

The cutoff of messages is the start of a day (in ``TIME_ZONE``): a day is purged whole, which
is what lets the dashboard add whole days of counts to its windows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Case, Count, F, Q, QuerySet, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from campaigns.conf import app_settings
from campaigns.domain.states import FINAL, MessageStatus
from campaigns.domain.windows import day_start
from campaigns.models import Decision, Message, MessageAttempt, MessageDayCount
from campaigns.models.messages import MessageRelatedObject
from campaigns.outbox.decisions import decisions_purge
from campaigns.recipients.inbox import inbox_channel_ids

MODES = ("delete", "content")
#: The fields "content" mode empties: what was rendered or given to render.
CONTENT_FIELDS = ("subject", "text", "html", "context")


@dataclass(slots=True)
class RetentionSummary:
    mode: str
    messages: int = 0  # deleted, or stripped of their content
    attempts: int = 0
    decisions: int = 0
    inbox_kept: int = 0  # unread inbox items past the age, kept (dry run only)

    def as_dict(self) -> dict:
        return asdict(self)


def retention_mode() -> str:
    mode = app_settings.RETENTION_MODE
    if mode not in MODES:
        raise ImproperlyConfigured(
            f'NOTIFIER["RETENTION_MODE"] is {mode!r}: expected one of {", ".join(MODES)}'
        )
    return mode


def message_cutoff(now: dt.datetime) -> dt.datetime | None:
    """Messages written before this are old enough (None: messages are kept for ever)."""
    days = app_settings.MESSAGE_RETENTION_DAYS
    return day_start(now - dt.timedelta(days=days)) if days > 0 else None


def messages_old(*, now: dt.datetime, mode: str) -> QuerySet[Message]:
    """The finished messages the retention would delete (or strip) now, unread inbox items
    left out."""
    cutoff = message_cutoff(now)
    if cutoff is None:
        return Message.objects.none()
    rows = Message.objects.filter(created_at__lt=cutoff, status__in=list(FINAL))
    inbox = inbox_channel_ids()
    if inbox:
        unread = Q(
            channel_id__in=inbox,
            status=MessageStatus.SENT,
            consumed_at__isnull=True,
            archived_at__isnull=True,
        )
        if app_settings.INBOX_RETENTION_DAYS > 0:
            inbox_cutoff = day_start(cutoff - dt.timedelta(days=app_settings.INBOX_RETENTION_DAYS))
            unread &= Q(created_at__gte=inbox_cutoff)
        rows = rows.exclude(unread)
    if mode == "content":
        rows = rows.filter(content_dropped_at__isnull=True)
    return rows


def attempts_old(*, now: dt.datetime) -> QuerySet[MessageAttempt]:
    days = app_settings.ATTEMPT_RETENTION_DAYS
    if days <= 0:
        return MessageAttempt.objects.none()
    return MessageAttempt.objects.filter(
        at__lt=now - dt.timedelta(days=days), message__status__in=list(FINAL)
    )


def retention_preview(*, now: dt.datetime | None = None) -> RetentionSummary:
    """What ``retention_run`` would do now, counted (reads only)."""
    now = now or timezone.now()
    mode = retention_mode()
    summary = RetentionSummary(mode=mode)
    summary.messages = messages_old(now=now, mode=mode).count()
    summary.attempts = attempts_old(now=now).count()
    if app_settings.DECISION_RETENTION_DAYS > 0:
        summary.decisions = Decision.objects.filter(
            created_at__lt=now - dt.timedelta(days=app_settings.DECISION_RETENTION_DAYS)
        ).count()
    cutoff = message_cutoff(now)
    if cutoff is not None:
        summary.inbox_kept = (
            Message.objects.filter(created_at__lt=cutoff, status__in=list(FINAL))
            .exclude(pk__in=messages_old(now=now, mode="delete").values("pk"))
            .count()
        )
    return summary


def retention_run(*, now: dt.datetime | None = None, batch: int | None = None) -> RetentionSummary:
    """Delete (or strip) what is older than its retention age, in batches of ``batch`` rows
    (default ``RETENTION_BATCH``), each its own short transaction. Returns what was done."""
    now = now or timezone.now()
    batch = batch or app_settings.RETENTION_BATCH
    mode = retention_mode()
    summary = RetentionSummary(mode=mode)
    after = 0  # the run walks the ids once: kept and locked rows are not read again
    while True:
        done, after = _messages_batch(now=now, mode=mode, batch=batch, after=after)
        summary.messages += done
        if done < batch:
            break
    while True:
        done = _attempts_batch(now=now, batch=batch)
        summary.attempts += done
        if done < batch:
            break
    if app_settings.DECISION_RETENTION_DAYS > 0:
        summary.decisions = decisions_purge(now=now, batch=batch)
    return summary


def _locked_ids(rows: QuerySet, batch: int) -> list[int]:
    """Up to ``batch`` ids of ``rows``, locked; rows someone else holds are skipped."""
    return list(
        rows.order_by("pk")
        .select_for_update(skip_locked=True, of=("self",))
        .values_list("pk", flat=True)[:batch]
    )


def _messages_batch(*, now: dt.datetime, mode: str, batch: int, after: int = 0) -> tuple[int, int]:
    """One batch of old messages with ids above ``after``, in one transaction: (how many
    were deleted or stripped, the last id taken)."""
    with transaction.atomic():
        ids = _locked_ids(messages_old(now=now, mode=mode).filter(pk__gt=after), batch)
        if not ids:
            return 0, after
        if mode == "content":
            _content_drop(ids, now=now)
            return len(ids), ids[-1]
        day_counts_add(ids)
        _delete_ids(MessageAttempt._meta.db_table, "message_id", ids)
        _delete_ids(MessageRelatedObject._meta.db_table, "message_id", ids)
        _delete_ids(Message._meta.db_table, "id", ids)
        return len(ids), ids[-1]


def _attempts_batch(*, now: dt.datetime, batch: int) -> int:
    with transaction.atomic():
        ids = _locked_ids(attempts_old(now=now), batch)
        if ids:
            _delete_ids(MessageAttempt._meta.db_table, "id", ids)
        return len(ids)


def _delete_ids(table: str, column: str, ids: Sequence[int]) -> None:
    """One DELETE by id (Django's ``delete()`` would first read every message whole)."""
    quote = connection.ops.quote_name
    marks = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {quote(table)} WHERE {quote(column)} IN ({marks})", ids)  # noqa: S608 - names from _meta, values bound


def _content_drop(ids: Sequence[int], *, now: dt.datetime) -> int:
    """Empty the content of these messages, leaving ``updated_at`` (the dashboard dates a
    failure by it) and everything about their delivery as they were."""
    quote = connection.ops.quote_name
    marks = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Message._meta.db_table)} SET subject = '', text = '', html = '', "  # noqa: S608 - names from _meta, values bound
            f"context = %s, content_dropped_at = %s WHERE id IN ({marks})",
            ["{}", now, *ids],
        )
        return cursor.rowcount


#: The day the dashboard's chart puts a message on: sent ones when sent, others when they
#: last changed (``campaigns.outbox.selectors.delivery_stats``).
_DONE_AT = Case(
    When(status=MessageStatus.SENT, sent_at__isnull=False, then=F("sent_at")),
    default=F("updated_at"),
)


def day_counts_add(ids: Sequence[int]) -> None:
    """Add these messages to ``MessageDayCount`` (in the caller's transaction): one query
    that groups them, and one INSERT … ON CONFLICT that adds to the rows already there."""
    groups = (
        Message.objects.filter(pk__in=ids)
        .annotate(day=TruncDate("created_at"), done_day=TruncDate(_DONE_AT))
        .values_list(
            "day", "done_day", "event__key", "channel__key", "language", "status", "campaign_id"
        )
        .annotate(n=Count("pk"))
        .order_by()
    )
    rows = list(groups)
    if not rows:
        return
    if connection.vendor != "postgresql":  # SQLite in development: row by row
        for day, done_day, event, channel, language, status, campaign_id, n in rows:
            key = dict(
                day=day,
                done_day=done_day,
                event=event,
                channel=channel,
                language=language,
                status=status,
                campaign_id=campaign_id,
            )
            if not MessageDayCount.objects.filter(**key).update(count=F("count") + n):
                MessageDayCount.objects.create(**key, count=n)
        return
    table = connection.ops.quote_name(MessageDayCount._meta.db_table)
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s::bigint, %s)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (day, done_day, event, channel, language, status, "  # noqa: S608 - names from _meta, values bound
            f"campaign_id, count) VALUES {values} ON CONFLICT ON CONSTRAINT daycount_key "
            f"DO UPDATE SET count = {table}.count + EXCLUDED.count",
            [value for row in rows for value in row],
        )
