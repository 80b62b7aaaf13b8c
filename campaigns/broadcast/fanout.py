"""The campaign's fan-out: scheduling, launching (the audience cut into chunks), one RQ job per
chunk writing its messages, and the sweep's part (launch due campaigns, re-enqueue lost
chunks, finish campaigns with nothing left to do).

A chunk job locks its ``CampaignChunk`` row (``SKIP LOCKED``) and the campaign row (``FOR
SHARE``), then plans (``planning.campaign_plan``, the same planning code as ``notify()``),
applies the event's trigger behaviour and writes the chunk's messages and marks the chunk done
in one transaction: a worker killed mid-chunk rolls both back, and the sweep enqueues the chunk
again. An address that two chunks share is found by the unique constraint on (campaign,
channel, address): the second chunk's insert fails, and its job plans again, this time reading
the campaign's rows for its addresses (one query that the chunks without shared addresses,
nearly all, do not pay). Pausing or cancelling updates the campaign row, so it waits for
chunk transactions in flight and they see it.

The messages due now are written straight into ``sending`` under the job's lease, and once
the transaction commits the job sends them itself, for up to ``DRAIN_BUDGET`` seconds (what
is left goes to the bulk lane's drain job). So a campaign is sent by as many workers as take
its chunks, and no message is claimed (read back and written again) before it is sent. A
worker killed after the commit leaves rows under a lease: the sweep takes them back, as it
does a claimed batch's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from functools import partial
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from campaigns.broadcast.audiences import audience_recipients, source_chunks
from campaigns.broadcast.control import campaign_pause
from campaigns.broadcast.planning import campaign_pins, campaign_plan, campaign_problems
from campaigns.conf import app_settings
from campaigns.domain.states import ACTIVE
from campaigns.exceptions import CampaignError, NotifierError
from campaigns.models import Campaign, CampaignChunk, CampaignStatus, Message
from campaigns.models.campaigns import ChunkStatus
from campaigns.outbox.decisions import decisions_record
from campaigns.outbox.dispatch import messages_send_leased
from campaigns.outbox.notify import messages_write
from campaigns.outbox.plan import Skipped
from campaigns.outbox.queueing import BULK, chunks_after_commit
from campaigns.outbox.transitions import messages_lease_new
from campaigns.outbox.triggers import triggers_apply

#: The earliest any timezone reaches a local time of day: UTC+14.
_EARLIEST_OFFSET = dt.timedelta(hours=14)


def fanout_start_time(campaign: Campaign, now: dt.datetime) -> dt.datetime:
    """When the fan-out begins: at ``send_at`` (or now); for a local time of day, as soon as
    the first timezone reaches it, so every message is written before it is due."""
    start = campaign.send_at or now
    if campaign.local_time is not None:
        day = timezone.localtime(start).date()
        start = dt.datetime.combine(day, campaign.local_time, tzinfo=dt.UTC) - _EARLIEST_OFFSET
    return start


def campaign_schedule(campaign: Campaign, *, now: dt.datetime | None = None) -> Campaign:
    """Start a draft: it is scheduled, and its fan-out begins at once when its time has
    come (else the sweep begins it). Raises CampaignError naming what is wrong."""
    now = now or timezone.now()
    problems = campaign_problems(campaign)
    if problems:
        raise CampaignError("This campaign cannot be sent: " + "; ".join(problems) + ".")
    # It is started: the template versions published now are the ones it sends.
    pins = campaign_pins(campaign)
    updated = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.DRAFT).update(
        status=CampaignStatus.SCHEDULED, template_versions=pins, updated_at=now
    )
    if not updated:
        raise CampaignError(f"Only a draft can be scheduled; this one is {campaign.status}.")
    campaign.status, campaign.template_versions = CampaignStatus.SCHEDULED, pins
    if fanout_start_time(campaign, now) <= now:
        campaign_launch(campaign.pk, now=now)
        campaign.refresh_from_db()
    return campaign


def campaign_unschedule(campaign: Campaign) -> None:
    updated = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.SCHEDULED).update(
        status=CampaignStatus.DRAFT, updated_at=timezone.now()
    )
    if not updated:
        raise CampaignError("Only a scheduled campaign that has not begun can go back to draft.")


def campaign_launch(campaign_id: int, *, now: dt.datetime | None = None) -> int:
    """Plan the chunks of a scheduled campaign and enqueue their jobs (after commit).
    Returns the number of chunks; 0 when another sweep launched it first."""
    now = now or timezone.now()
    with transaction.atomic():
        campaign = (
            Campaign.objects.select_for_update(skip_locked=True)
            .select_related("audience")
            .filter(pk=campaign_id, status=CampaignStatus.SCHEDULED)
            .first()
        )
        if campaign is None:
            return 0
        parts = source_chunks(campaign.audience)
        chunks = CampaignChunk.objects.bulk_create(
            [
                CampaignChunk(
                    campaign=campaign,
                    number=number,
                    first_id=first,
                    last_id=last,
                    size=size,
                    enqueued_at=now,
                )
                for number, (first, last, size) in enumerate(parts)
            ]
        )
        campaign.status = CampaignStatus.RUNNING if chunks else CampaignStatus.DONE
        campaign.recipients_total = sum(size for _, _, size in parts)
        campaign.started_at = now
        campaign.finished_at = None if chunks else now
        campaign.save(
            update_fields=["status", "recipients_total", "started_at", "finished_at", "updated_at"]
        )
        ids = [chunk.pk for chunk in chunks]
        chunks_after_commit(ids)
    return len(ids)


def _campaign_share_lock(campaign_id: int) -> str:
    """The campaign's status, read under a share lock on PostgreSQL: pause and cancel update
    the row, so they wait for this chunk's transaction, and a chunk begun after them sees
    their status."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT status FROM {Campaign._meta.db_table} WHERE id = %s FOR SHARE",  # noqa: S608
                [campaign_id],
            )
            row = cursor.fetchone()
        return row[0] if row else CampaignStatus.CANCELLED
    return Campaign.objects.filter(pk=campaign_id).values_list("status", flat=True).first()


def chunk_fan_out(chunk_id: int) -> dict[str, Any]:
    """Write one chunk's messages (the RQ job). Idempotent: a chunk done, cancelled, or held
    by another worker is left alone; a paused campaign's chunk waits for resume.

    When the plan refuses the chunk (its event or a channel was deactivated since the
    campaign began, its values no longer fit the event), nothing of the chunk is written and
    the campaign is paused with the reason, for an operator to fix and resume."""
    for attempt in range(3):
        try:
            # The first try does not read which addresses other chunks already wrote: most
            # chunks have none, and the unique index refuses the rows of those that do.
            report, leased = _chunk_fan_out(chunk_id, rows_read=attempt > 0)
        except NotifierError as error:
            campaign = Campaign.objects.get(chunks=chunk_id)
            reason = f"paused by the site: {error}"[:500]
            with contextlib.suppress(CampaignError):  # an operator paused or cancelled it
                campaign_pause(campaign, reason=reason)
            return {"chunk": chunk_id, "state": "refused", "reason": reason}
        except IntegrityError:
            # Another chunk committed the same address: the next try reads the campaign's
            # rows for the chunk's addresses and skips those as duplicates.
            if attempt == 2:
                raise
        else:
            if leased:  # at once, unless a caller's transaction still holds the rows
                transaction.on_commit(partial(messages_send_leased, leased))
                report["sending"] = len(leased)
            return report
    raise AssertionError("unreachable")


def _chunk_fan_out(chunk_id: int, *, rows_read: bool) -> tuple[dict[str, Any], list[Message]]:
    with transaction.atomic():
        chunk = (
            CampaignChunk.objects.select_for_update(skip_locked=True)
            .filter(pk=chunk_id, status=ChunkStatus.PENDING)
            .first()
        )
        if chunk is None:
            return {"chunk": chunk_id, "state": "done or taken"}, []
        status = _campaign_share_lock(chunk.campaign_id)
        if status == CampaignStatus.CANCELLED:
            chunk.status = ChunkStatus.CANCELLED
            chunk.save(update_fields=["status"])
            return {"chunk": chunk_id, "state": "cancelled"}, []
        if status != CampaignStatus.RUNNING:
            return {"chunk": chunk_id, "state": status}, []
        campaign = Campaign.objects.select_related("event", "audience").get(pk=chunk.campaign_id)
        people = audience_recipients(campaign.audience, chunk.first_id, chunk.last_id)
        now = timezone.now()
        result = campaign_plan(campaign, people, rows_read=rows_read, now=now)
        messages, duplicates = triggers_apply(
            result.messages, behaviour=campaign.event.trigger, now=now
        )
        result.skipped.extend(
            Skipped(m.recipient, m.channel.key, reason) for m, reason in duplicates
        )
        leased = messages_lease_new(
            messages, now=now, lease_until=now + dt.timedelta(seconds=app_settings.LEASE_SECONDS)
        )
        messages_write(messages, lane=BULK)
        decisions_record(result.skipped, event=campaign.event, campaign=campaign, now=now)
        result.messages = messages
        chunk.status = ChunkStatus.DONE
        chunk.written = len(result.messages)
        chunk.skipped = dict(Counter(skip.reason for skip in result.skipped))
        chunk.done_at = timezone.now()
        chunk.save(update_fields=["status", "written", "skipped", "done_at"])
    report = {"chunk": chunk_id, "written": chunk.written, "skipped": sum(chunk.skipped.values())}
    return report, leased


def campaigns_tick(*, now: dt.datetime | None = None) -> dict[str, int]:
    """The sweep's part: launch scheduled campaigns whose time has come, enqueue again the
    chunks whose job was lost (a killed worker, Redis lost), and finish campaigns with
    nothing left to do."""
    now = now or timezone.now()
    launched = 0
    for campaign in Campaign.objects.filter(status=CampaignStatus.SCHEDULED):
        if fanout_start_time(campaign, now) <= now:
            launched += bool(campaign_launch(campaign.pk, now=now))
    stale = now - dt.timedelta(seconds=app_settings.QUEUED_TIMEOUT)
    with transaction.atomic():
        lost = list(
            CampaignChunk.objects.filter(
                status=ChunkStatus.PENDING,
                campaign__status=CampaignStatus.RUNNING,
                enqueued_at__lt=stale,
            )
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)[: app_settings.SWEEP_CHUNK]
        )
        if lost:
            CampaignChunk.objects.filter(pk__in=lost).update(enqueued_at=now)
            chunks_after_commit(lost)
    finished = 0
    for campaign_id in Campaign.objects.filter(status=CampaignStatus.RUNNING).values_list(
        "pk", flat=True
    ):
        finished += campaign_finish_if_done(campaign_id, now=now)
    return {"launched": launched, "chunks_requeued": len(lost), "finished": finished}


def campaign_finish_if_done(campaign_id: int, *, now: dt.datetime | None = None) -> bool:
    """A running campaign with every chunk written and no message left to process is done."""
    now = now or timezone.now()
    if CampaignChunk.objects.filter(campaign=campaign_id, status=ChunkStatus.PENDING).exists():
        return False
    if Message.objects.filter(campaign=campaign_id, status__in=ACTIVE).exists():
        return False
    return bool(
        Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.RUNNING).update(
            status=CampaignStatus.DONE, finished_at=now, updated_at=now
        )
    )
