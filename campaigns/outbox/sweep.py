"""The sweep: hands due work to workers and recovers what a dead worker left.

One pass
1. reclaims ``sending`` rows whose lease ran out: what the journal says was already sent is
   recorded as such; the rest go back to ``queued`` (or ``failed`` when out of attempts);
2. cancels waiting rows whose ``expires_at`` has passed (reason "expired", with a decision
   each), so they never go out late;
3. moves due ``scheduled`` / ``retrying`` / ``pending`` rows, and ``queued`` rows whose job
   never came (Redis lost), to ``queued`` under a fresh queue lease;
4. enqueues dispatch jobs for them after commit;
5. (``campaigns.jobs.sweep``, with ``broadcast.fanout.campaigns_tick``) launches scheduled
   campaigns whose time has come, enqueues again campaign chunks whose job was lost, and
   finishes campaigns with nothing left to do.

Every selection locks with ``SKIP LOCKED`` on PostgreSQL, so two sweeps at once are safe.
RQ's cron scheduler runs it every ``SWEEP_INTERVAL`` seconds; ``process_notifications`` runs
the same code from the command line.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from campaigns.conf import app_settings
from campaigns.domain.states import WAITING
from campaigns.models import Message, MessageStatus
from campaigns.outbox.decisions import EXPIRED, expired_decisions_record
from campaigns.outbox.dispatch import message_dispatch
from campaigns.outbox.journal import journal_clear, journal_load
from campaigns.outbox.outcomes import attempts_logged, attempts_record, outcomes_write
from campaigns.outbox.queueing import chunked, drains_ensure
from campaigns.outbox.transitions import messages_move, messages_queue


@dataclass(slots=True)
class SweepSummary:
    recovered: int = 0  # expired leases whose result the journal held
    reclaimed: int = 0  # expired leases sent back to the queue
    expired: int = 0  # expired leases out of attempts: failed
    enqueued: int = 0  # rows handed to workers
    cancelled: int = 0  # waiting rows past their expiry: cancelled unsent
    campaigns: int = 0  # campaigns launched or finished, chunks enqueued again (jobs.sweep)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def leases_reclaim(*, now: dt.datetime, summary: SweepSummary, enqueue: bool) -> list[int]:
    """Step 1. Returns the ids put back to ``queued``."""
    queued_ids: list[int] = []
    while True:
        with transaction.atomic():
            rows = list(
                Message.objects.filter(status=MessageStatus.SENDING, lease_until__lt=now)
                .select_for_update(skip_locked=True)
                .order_by("lease_until")
                .values("id", "attempts", "max_attempts", "channel_id")[: app_settings.SWEEP_CHUNK]
            )
            if not rows:
                break
            journal = journal_load(row["id"] for row in rows)
            recovered, requeue, failed = [], [], []
            for row in rows:
                entry = journal.get(row["id"])
                if entry is not None and entry.get("attempts") == row["attempts"]:
                    recovered.append(_journal_row(entry))
                elif row["attempts"] >= row["max_attempts"]:
                    failed.append(row["id"])
                else:
                    requeue.append(row["id"])
            outcomes_write(recovered)  # bodies where the journal kept them (inbox rows)
            attempts_record(attempts_logged(recovered))
            messages_move(
                Message.objects.filter(id__in=failed),
                to=MessageStatus.FAILED,
                now=now,
                lease_until=None,
                next_attempt_at=None,
                last_error="worker lost while sending (lease expired) on the last attempt",
            )
            ids = messages_queue(Message.objects.filter(id__in=requeue), now=now, enqueue=enqueue)
            transaction.on_commit(lambda rows=rows: journal_clear(r["id"] for r in rows))
        summary.recovered += len(recovered)
        summary.expired += len(failed)
        summary.reclaimed += len(ids)
        queued_ids.extend(ids)
        if len(rows) < app_settings.SWEEP_CHUNK:
            break
    return queued_ids


def _journal_row(entry: dict) -> dict:
    row = dict(entry)
    for name in ("sent_at", "next_attempt_at", "lease_until"):
        if isinstance(row.get(name), str):
            row[name] = parse_datetime(row[name])
    return row


def expired_cancel(*, now: dt.datetime, summary: SweepSummary) -> int:
    """Step 2: cancel the waiting rows (scheduled, retrying) whose ``expires_at`` has passed,
    a chunk at a time, each with its decision ("expired") for the person's timeline. Rows
    another process holds are left to the next sweep (or to the dispatch recheck, which
    cancels them too)."""
    cancelled = 0
    while True:
        with transaction.atomic():
            rows = list(
                Message.objects.filter(status__in=WAITING, expires_at__lte=now)
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("expires_at")
                .values(
                    "id", "event_id", "recipient", "campaign_id", channel_key=F("channel__key")
                )[: app_settings.SWEEP_CHUNK]
            )
            if not rows:
                break
            moved = messages_move(
                Message.objects.filter(id__in=[row["id"] for row in rows], status__in=WAITING),
                to=MessageStatus.CANCELLED,
                now=now,
                status_reason=EXPIRED,
                next_attempt_at=None,
                lease_until=None,
            )
            expired_decisions_record(rows, now=now)
        cancelled += moved
        if len(rows) < app_settings.SWEEP_CHUNK:
            break
    summary.cancelled += cancelled
    return cancelled


def due_enqueue(*, now: dt.datetime, summary: SweepSummary, enqueue: bool) -> list[int]:
    """Steps 3 and 4. Returns the ids now ``queued``."""
    queued_ids: list[int] = []
    due = Q(status__in=WAITING, next_attempt_at__lte=now) | Q(
        status=MessageStatus.QUEUED, lease_until__lt=now
    )
    while True:
        ids = messages_queue(
            Message.objects.filter(due),
            now=now,
            limit=app_settings.SWEEP_CHUNK,
            enqueue=enqueue,
            next_attempt_at=F("next_attempt_at"),  # when it was due stays as it was
        )
        summary.enqueued += len(ids)
        queued_ids.extend(ids)
        if len(ids) < app_settings.SWEEP_CHUNK:
            break
    return queued_ids


def sweep(*, now: dt.datetime | None = None, enqueue: bool = True) -> SweepSummary:
    """One pass. With ``enqueue=False`` the rows are queued but no job is enqueued (the
    caller dispatches them itself, as ``send_messages_batch`` does)."""
    now = now or timezone.now()
    summary = SweepSummary()
    leases_reclaim(now=now, summary=summary, enqueue=enqueue)
    expired_cancel(now=now, summary=summary)
    due_enqueue(now=now, summary=summary, enqueue=enqueue)
    if enqueue:  # a lane with ready ids and no drain job (a worker was killed): start one
        drains_ensure(force=bool(summary.reclaimed or summary.recovered))
    return summary


def drain(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Send everything due now in this process, without RQ (``send_messages_batch``)."""
    now = now or timezone.now()
    totals: dict[str, int] = defaultdict(int)
    for name, value in sweep(now=now, enqueue=False).as_dict().items():
        totals[name] += value
    size = app_settings.BATCH_SIZE
    due = Q(status=MessageStatus.QUEUED) | Q(status__in=WAITING, next_attempt_at__lte=now)
    while True:
        ids = list(
            Message.objects.filter(due).order_by("id").values_list("id", flat=True)[: size * 10]
        )
        claimed = 0
        for chunk in chunked(ids, size):
            result = message_dispatch(message_ids=chunk)
            claimed += result.claimed
            for name, value in result.counts.items():
                totals[name] += value
        if not claimed:  # nothing left, or other workers hold the rest
            break
    return dict(totals)
