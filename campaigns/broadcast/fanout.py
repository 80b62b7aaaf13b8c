"""Campaigns: audiences, the dry run, test sends, the chunked fan-out, pause / resume /
cancel, progress and the report.

The fan-out and the dry run call the same ``notify()`` with the same arguments, chunk by
chunk (``dry_run=True`` writes nothing), so the dry run's counts are what sending does.

A chunk job locks its ``CampaignChunk`` row (``SKIP LOCKED``) and the campaign row (``FOR
SHARE``), then writes the chunk's messages and marks the chunk done in one transaction: a
worker killed mid-chunk rolls both back, and the sweep enqueues the chunk again. The unique
constraint on (campaign, channel, address) is the net under it. Pausing or cancelling
updates the campaign row, so it waits for chunk transactions in flight and they see it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Count
from django.utils import timezone

from campaigns.conf import app_settings
from campaigns.exceptions import NotifierError
from campaigns.models import (
    Audience,
    AudienceKind,
    Campaign,
    CampaignChunk,
    CampaignStatus,
    Contact,
    Message,
    MessageStatus,
    Template,
)
from campaigns.models.campaigns import ChunkStatus
from campaigns.models.messages import ACTIVE, FINAL
from campaigns.outbox.notify import context_validate, language_candidates, notify
from campaigns.outbox.queueing import (
    chunked,
    enqueue_dispatch_on_commit,
    enqueue_job,
    redis_connection,
)
from campaigns.outbox.testsend import TestSendResult, template_test_send
from channels.backends.base import ConfigurationError
from channels.models import ChannelConfig

#: The earliest any timezone reaches a local time of day: UTC+14.
_EARLIEST_OFFSET = dt.timedelta(hours=14)
CHUNK_JOB = "campaigns.jobs.campaign_chunk"


class CampaignError(NotifierError):
    """A campaign cannot do what was asked; the message says why."""


# --- audiences ------------------------------------------------------------------------------

#: Recipient keys a contact's extra columns may not override.
_CONTACT_RESERVED = {"user_id", "email", "phone", "name", "language", "tz", "contact_id"}


def audience_queryset(audience: Audience) -> models.QuerySet:
    """The audience's source rows (users or contacts), ordered by id."""
    if audience.kind == AudienceKind.CONTACTS:
        return Contact.objects.filter(audience=audience).order_by("pk")
    users = get_user_model().objects.filter(is_active=True)
    if audience.kind == AudienceKind.GROUP:
        users = users.filter(groups=audience.group_id)
    elif audience.kind == AudienceKind.FILTER:
        if audience.joined_after:
            users = users.filter(date_joined__date__gte=audience.joined_after)
        if audience.joined_before:
            users = users.filter(date_joined__date__lte=audience.joined_before)
        if audience.logged_in_since:
            users = users.filter(last_login__date__gte=audience.logged_in_since)
        if audience.email_domain:
            users = users.filter(email__iendswith="@" + audience.email_domain)
        if audience.language:
            users = users.filter(notification_profile__language__iexact=audience.language)
    return users.order_by("pk")


def audience_size(audience: Audience) -> int:
    return audience_queryset(audience).count()


def audience_recipients(audience: Audience, first_id: int, last_id: int) -> list[dict[str, Any]]:
    """The recipients with source ids ``first_id``..``last_id``, as ``notify()`` takes them:
    users by id (notify adds their addresses, language and timezone), contacts with their
    fields and extra columns."""
    rows = audience_queryset(audience).filter(pk__gte=first_id, pk__lte=last_id)
    if audience.kind != AudienceKind.CONTACTS:
        return [{"user_id": pk} for pk in rows.values_list("pk", flat=True)]
    people = []
    for contact in rows.values("pk", "email", "phone", "name", "language", "tz", "data"):
        person = {k: v for k, v in (contact["data"] or {}).items() if k not in _CONTACT_RESERVED}
        person["contact_id"] = contact["pk"]
        for name in ("email", "phone", "name", "language", "tz"):
            if contact[name]:
                person[name] = contact[name]
        people.append(person)
    return people


def _source_chunks(audience: Audience) -> list[tuple[int, int, int]]:
    """(first id, last id, size) per chunk of the audience, from one read of its ids."""
    ids = list(audience_queryset(audience).values_list("pk", flat=True))
    return [(part[0], part[-1], len(part)) for part in chunked(ids, app_settings.CAMPAIGN_CHUNK)]


# --- checks ---------------------------------------------------------------------------------


def campaign_channels(campaign: Campaign) -> list[ChannelConfig]:
    """The campaign's channels, or, when it names none, every active channel the event has an
    active template for."""
    chosen = list(campaign.channels.all()) if campaign.pk else []
    if chosen:
        return chosen
    with_templates = Template.objects.filter(event=campaign.event_id, is_active=True).values(
        "channel_id"
    )
    return list(ChannelConfig.objects.filter(is_active=True, pk__in=with_templates))


def campaign_problems(campaign: Campaign) -> list[str]:
    """What stops this campaign from being sent, in words an operator can act on."""
    problems = []
    if not campaign.event.is_active:
        problems.append(f"the event {campaign.event.key!r} is inactive")
    try:
        context_validate(event=campaign.event, context=campaign.context or {})
    except NotifierError as error:
        problems.append(str(error))
    channels = campaign_channels(campaign)
    if not channels:
        problems.append("no active channel has a template for this event")
    inactive = [c.key for c in channels if not c.is_active]
    if inactive:
        problems.append(f"inactive channel(s): {', '.join(inactive)}")
    if campaign.audience_id and audience_size(campaign.audience) == 0:
        problems.append(f"the audience {campaign.audience.name!r} is empty")
    return problems


def _context_ok(campaign: Campaign) -> bool:
    try:
        context_validate(event=campaign.event, context=campaign.context or {})
    except NotifierError:
        return False
    return True


def _notify_options(campaign: Campaign) -> dict[str, Any]:
    channels = [c.key for c in campaign.channels.all()]
    return {
        "event": campaign.event,
        "context": campaign.context or {},
        "channels": channels or None,
        "scheduled_at": campaign.send_at,
        "local_time": campaign.local_time,
        "tag": f"campaign:{campaign.pk}",
        "skip_invalid": True,
        "campaign": campaign,
    }


# --- dry run --------------------------------------------------------------------------------


@dataclass(slots=True)
class DryRun:
    recipients: int = 0
    #: (channel key, language) -> messages that would be written
    planned: Counter = field(default_factory=Counter)
    #: channel key -> [messages held for a time or window, earliest, latest]
    scheduled: dict[str, list[Any]] = field(default_factory=dict)
    #: (channel key, reason) -> recipients not written
    skipped: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(self.planned.values())

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def per_channel(self) -> dict[str, int]:
        totals: Counter = Counter()
        for (channel, _), count in self.planned.items():
            totals[channel] += count
        return dict(totals)

    def as_json(self) -> dict[str, Any]:
        return {
            "recipients": self.recipients,
            "planned": [[c, lang, n] for (c, lang), n in self.planned.items()],
            "scheduled": {
                c: [n, first.isoformat(), last.isoformat()]
                for c, (n, first, last) in self.scheduled.items()
            },
            "skipped": [[c, reason, n] for (c, reason), n in self.skipped.items()],
            "problems": self.problems,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DryRun:
        return cls(
            recipients=data["recipients"],
            planned=Counter({(c, lang): n for c, lang, n in data["planned"]}),
            scheduled={
                c: [n, dt.datetime.fromisoformat(first), dt.datetime.fromisoformat(last)]
                for c, (n, first, last) in data["scheduled"].items()
            },
            skipped=Counter({(c, reason): n for c, reason, n in data["skipped"]}),
            problems=data["problems"],
        )


def campaign_dry_run(
    campaign: Campaign,
    *,
    now: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DryRun:
    """Who would get the campaign if it were sent now, per channel and language, and who
    would not and why. Writes nothing. ``progress(done, total)`` is called after each chunk
    of recipients."""
    now = now or timezone.now()
    report = DryRun(problems=campaign_problems(campaign))
    if not campaign.event.is_active or not _context_ok(campaign):
        report.recipients = audience_size(campaign.audience)
        return report  # notify() refuses every chunk for the reason the problems give
    options = _notify_options(campaign)
    seen: set[tuple[int, str]] = set()
    chunks = _source_chunks(campaign.audience)
    total = sum(size for _, _, size in chunks)
    for first_id, last_id, size in chunks:
        if progress is not None:
            progress(report.recipients, total)
        people = audience_recipients(campaign.audience, first_id, last_id)
        report.recipients += size
        result = notify(recipients=people, dry_run=True, campaign_seen=seen, **options)
        for message in result.messages:
            report.planned[(message.channel.key, message.language)] += 1
            if message.status == MessageStatus.SCHEDULED and message.next_attempt_at > now:
                entry = report.scheduled.setdefault(message.channel.key, [0, None, None])
                entry[0] += 1
                due = message.next_attempt_at
                entry[1] = due if entry[1] is None else min(entry[1], due)
                entry[2] = due if entry[2] is None else max(entry[2], due)
        for skip in result.skipped:
            report.skipped[(skip.channel, skip.reason)] += 1
    return report


# A large audience's dry run runs as an RQ job; its progress and result wait in Redis.
DRY_RUN_JOB = "campaigns.jobs.campaign_dry_run"
_DRY_RUN_KEY = "notifier:dry-run:{}"
_DRY_RUN_TTL = 3600


@dataclass(slots=True)
class DryRunState:
    state: str  # "running" | "done" | "failed"
    done: int = 0
    total: int = 0
    report: DryRun | None = None
    finished_at: dt.datetime | None = None
    error: str = ""

    @property
    def percent(self) -> int:
        return min(100, int(100 * self.done / self.total)) if self.total else 0


def _dry_run_version(campaign: Campaign) -> str:
    """A dry run answers for the campaign as it was: an edit makes it stale."""
    return campaign.updated_at.isoformat() if campaign.updated_at else ""


def dry_run_state(campaign: Campaign) -> DryRunState | None:
    """The background dry run of this version of the campaign, if one was asked for."""
    raw = redis_connection().get(_DRY_RUN_KEY.format(campaign.pk))
    if raw is None:
        return None
    data = json.loads(raw)
    if data.get("version") != _dry_run_version(campaign):
        return None
    return DryRunState(
        state=data["state"],
        done=data.get("done", 0),
        total=data.get("total", 0),
        report=DryRun.from_json(data["report"]) if data.get("report") else None,
        finished_at=dt.datetime.fromisoformat(data["at"]) if data.get("at") else None,
        error=data.get("error", ""),
    )


def _dry_run_save(campaign: Campaign, **data: Any) -> None:
    data["version"] = _dry_run_version(campaign)
    redis_connection().set(_DRY_RUN_KEY.format(campaign.pk), json.dumps(data), ex=_DRY_RUN_TTL)


def dry_run_start(campaign: Campaign) -> DryRunState:
    """Enqueue the dry run of a large audience (once per version of the campaign)."""
    total = audience_size(campaign.audience)
    _dry_run_save(campaign, state="running", done=0, total=total)
    enqueue_job(DRY_RUN_JOB, [(campaign.pk,)], label="campaign dry run")
    return DryRunState(state="running", total=total)


def dry_run_job(campaign_id: int) -> dict[str, Any]:
    """The RQ job: runs the dry run, saving its progress after each chunk."""
    campaign = Campaign.objects.select_related("event", "audience").get(pk=campaign_id)

    def progress(done: int, total: int) -> None:
        _dry_run_save(campaign, state="running", done=done, total=total)

    try:
        report = campaign_dry_run(campaign, progress=progress)
    except Exception as error:
        _dry_run_save(campaign, state="failed", error=f"{type(error).__name__}: {error}")
        raise
    _dry_run_save(
        campaign,
        state="done",
        done=report.recipients,
        total=report.recipients,
        report=report.as_json(),
        at=timezone.now().isoformat(),
    )
    return {"campaign": campaign_id, "recipients": report.recipients, "messages": report.messages}


# --- test send ------------------------------------------------------------------------------


def campaign_test_send(
    campaign: Campaign, addresses: Iterable[str]
) -> list[tuple[str, str, TestSendResult]]:
    """Send the campaign, rendered with its context (sample values fill the rest), to each
    typed address on every campaign channel that takes it. Returns (channel, address,
    result) rows; an address no channel takes is one row naming that."""
    channels = campaign_channels(campaign)
    event = campaign.event
    context = {**event.sample_context(), **(campaign.context or {})}
    templates = {
        (t.channel_id, t.language): t
        for t in Template.objects.filter(
            event=event, channel__in=channels, is_active=True
        ).select_related("event", "channel")
    }
    rows: list[tuple[str, str, TestSendResult]] = []
    for address in dict.fromkeys(a.strip() for a in addresses if a.strip()):
        taken = False
        for channel in channels:
            try:
                channel.get_backend().validate_address(address)
            except ValidationError:  # not an address for this channel
                continue
            except ConfigurationError as error:
                taken = True
                rows.append(
                    (channel.key, address, TestSendResult(False, f"misconfigured: {error}"))
                )
                continue
            taken = True
            template = next(
                (
                    templates[(channel.pk, lang)]
                    for lang in language_candidates(None, event)
                    if (channel.pk, lang) in templates
                ),
                next((t for (cid, _), t in templates.items() if cid == channel.pk), None),
            )
            if template is None:
                rows.append((channel.key, address, TestSendResult(False, "no template")))
                continue
            result = template_test_send(template=template, address=address, context=context)
            rows.append((channel.key, address, result))
        if not taken:
            names = ", ".join(c.key for c in channels)
            rows.append(("", address, TestSendResult(False, f"not an address for any of: {names}")))
    return rows


# --- starting and the fan-out ----------------------------------------------------------------


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
    updated = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.DRAFT).update(
        status=CampaignStatus.SCHEDULED, updated_at=now
    )
    if not updated:
        raise CampaignError(f"Only a draft can be scheduled; this one is {campaign.status}.")
    campaign.status = CampaignStatus.SCHEDULED
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
        parts = _source_chunks(campaign.audience)
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
        transaction.on_commit(lambda: _chunks_enqueue(ids))
    return len(ids)


def _chunks_enqueue(chunk_ids: list[int]) -> None:
    enqueue_job(CHUNK_JOB, [(chunk_id,) for chunk_id in chunk_ids], label="campaign chunk")


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

    When ``notify()`` refuses the chunk (its event or a channel was deactivated since the
    campaign began, its values no longer fit the event), nothing of the chunk is written and
    the campaign is paused with the reason, for an operator to fix and resume."""
    for attempt in range(3):
        try:
            return _chunk_fan_out(chunk_id)
        except NotifierError as error:
            campaign = Campaign.objects.get(chunks=chunk_id)
            reason = f"paused by the site: {error}"[:500]
            with contextlib.suppress(CampaignError):  # an operator paused or cancelled it
                campaign_pause(campaign, reason=reason)
            return {"chunk": chunk_id, "state": "refused", "reason": reason}
        except IntegrityError:
            # Another chunk committed the same address first: its row is visible now, so
            # the next try skips it as a duplicate address.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _chunk_fan_out(chunk_id: int) -> dict[str, Any]:
    with transaction.atomic():
        chunk = (
            CampaignChunk.objects.select_for_update(skip_locked=True)
            .filter(pk=chunk_id, status=ChunkStatus.PENDING)
            .first()
        )
        if chunk is None:
            return {"chunk": chunk_id, "state": "done or taken"}
        status = _campaign_share_lock(chunk.campaign_id)
        if status == CampaignStatus.CANCELLED:
            chunk.status = ChunkStatus.CANCELLED
            chunk.save(update_fields=["status"])
            return {"chunk": chunk_id, "state": "cancelled"}
        if status != CampaignStatus.RUNNING:
            return {"chunk": chunk_id, "state": status}
        campaign = Campaign.objects.select_related("event", "audience").get(pk=chunk.campaign_id)
        people = audience_recipients(campaign.audience, chunk.first_id, chunk.last_id)
        result = notify(recipients=people, **_notify_options(campaign))
        chunk.status = ChunkStatus.DONE
        chunk.written = len(result.messages)
        chunk.skipped = dict(Counter(skip.reason for skip in result.skipped))
        chunk.done_at = timezone.now()
        chunk.save(update_fields=["status", "written", "skipped", "done_at"])
    return {"chunk": chunk_id, "written": chunk.written, "skipped": sum(chunk.skipped.values())}


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
            transaction.on_commit(lambda: _chunks_enqueue(lost))
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


# --- pause, resume, cancel ------------------------------------------------------------------

#: Messages a pause holds and a cancel stops: everything not yet claimed by a worker.
_HOLDABLE = [
    MessageStatus.PENDING,
    MessageStatus.SCHEDULED,
    MessageStatus.QUEUED,
    MessageStatus.RETRYING,
]


def campaign_pause(campaign: Campaign, *, reason: str = "") -> int:
    """Hold a running campaign: pending chunks wait, unsent messages become ``paused``
    (a batch already sending stops at its next message). Returns the messages held."""
    now = timezone.now()
    with transaction.atomic():
        updated = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.RUNNING).update(
            status=CampaignStatus.PAUSED, status_reason=reason, updated_at=now
        )
        if not updated:
            raise CampaignError(
                f"Only a running campaign can be paused; this one is {campaign.status}."
            )
        held = Message.objects.filter(campaign=campaign, status__in=_HOLDABLE).update(
            status=MessageStatus.PAUSED, lease_until=None, updated_at=now
        )
    campaign.status, campaign.status_reason = CampaignStatus.PAUSED, reason
    return held


def campaign_resume(campaign: Campaign) -> int:
    """Let a paused campaign go on: due messages are queued again, later ones wait for their
    time, and pending chunks are enqueued. Returns the messages queued now."""
    now = timezone.now()
    queue_lease = now + dt.timedelta(seconds=app_settings.QUEUED_TIMEOUT)
    with transaction.atomic():
        updated = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.PAUSED).update(
            status=CampaignStatus.RUNNING, status_reason="", updated_at=now
        )
        if not updated:
            raise CampaignError(
                f"Only a paused campaign can be resumed; this one is {campaign.status}."
            )
        paused = Message.objects.filter(campaign=campaign, status=MessageStatus.PAUSED)
        paused.filter(next_attempt_at__gt=now).update(
            status=MessageStatus.SCHEDULED, updated_at=now
        )
        due = list(paused.values_list("pk", "channel_id"))
        Message.objects.filter(pk__in=[pk for pk, _ in due]).update(
            status=MessageStatus.QUEUED,
            next_attempt_at=now,
            lease_until=queue_lease,
            updated_at=now,
        )
        by_channel: dict[int, list[int]] = defaultdict(list)
        for pk, channel_id in due:
            by_channel[channel_id].append(pk)
        enqueue_dispatch_on_commit(by_channel)
        pending = list(
            CampaignChunk.objects.filter(campaign=campaign, status=ChunkStatus.PENDING).values_list(
                "pk", flat=True
            )
        )
        CampaignChunk.objects.filter(pk__in=pending).update(enqueued_at=now)
        transaction.on_commit(lambda: _chunks_enqueue(pending))
    campaign.status, campaign.status_reason = CampaignStatus.RUNNING, ""
    return len(due)


@dataclass(frozen=True, slots=True)
class CancelResult:
    stopped: int  # messages that will not be sent
    in_flight: int  # messages a worker was sending when the cancel came; they finished
    still_sending: int  # messages of a worker that did not finish within the wait


def campaign_cancel(campaign: Campaign, *, wait: float | None = None) -> CancelResult:
    """Stop a campaign for good: pending chunks and unsent messages are cancelled; sent ones
    stay. Returns once no batch is still sending its messages (up to ``wait`` seconds,
    ``CAMPAIGN_CANCEL_WAIT``), so nothing is sent after it answers."""
    now = timezone.now()
    with transaction.atomic():
        updated = Campaign.objects.filter(
            pk=campaign.pk,
            status__in=[CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED],
        ).update(status=CampaignStatus.CANCELLED, cancelled_at=now, updated_at=now)
        if not updated:
            raise CampaignError(f"This campaign is {campaign.status}: there is nothing to cancel.")
        stopped = Message.objects.filter(
            campaign=campaign, status__in=[*_HOLDABLE, MessageStatus.PAUSED]
        ).update(
            status=MessageStatus.CANCELLED,
            status_reason="campaign cancelled",
            next_attempt_at=None,
            lease_until=None,
            updated_at=now,
        )
        CampaignChunk.objects.filter(campaign=campaign, status=ChunkStatus.PENDING).update(
            status=ChunkStatus.CANCELLED
        )
    sending = Message.objects.filter(campaign=campaign, status=MessageStatus.SENDING)
    in_flight = sending.count()
    deadline = time.monotonic() + (app_settings.CAMPAIGN_CANCEL_WAIT if wait is None else wait)
    still = in_flight
    while still and time.monotonic() < deadline:
        time.sleep(0.05)
        still = sending.count()
    campaign.status = CampaignStatus.CANCELLED
    return CancelResult(stopped=stopped, in_flight=in_flight - still, still_sending=still)


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


# --- progress and report --------------------------------------------------------------------

_PROCESSED = set(FINAL)


@dataclass(slots=True)
class Progress:
    status: str
    recipients: int
    chunks_total: int
    chunks_done: int
    by_status: dict[str, int]
    skipped: int
    per_second: float
    percent: int

    @property
    def written(self) -> int:
        return sum(self.by_status.values())

    def count(self, *statuses: str) -> int:
        return sum(self.by_status.get(s, 0) for s in statuses)

    @property
    def queued(self) -> int:
        return self.count(*(s for s in self.by_status if s not in _PROCESSED))

    @property
    def sent(self) -> int:
        return self.count(MessageStatus.SENT, MessageStatus.DEBUG)

    @property
    def failed(self) -> int:
        return self.count(MessageStatus.FAILED, MessageStatus.BROKEN)

    @property
    def cancelled(self) -> int:
        return self.count(MessageStatus.CANCELLED, MessageStatus.SKIPPED)

    @property
    def finished(self) -> bool:
        return self.status in (CampaignStatus.DONE, CampaignStatus.CANCELLED)


def campaign_progress(campaign: Campaign, *, window: float = 10.0) -> Progress:
    """Counts by status, skips, throughput over the last ``window`` seconds, and a percent
    that reaches 100 when nothing is left to do. Finishes a campaign that is done."""
    if campaign.status == CampaignStatus.RUNNING and campaign_finish_if_done(campaign.pk):
        campaign.refresh_from_db()
    now = timezone.now()
    by_status = dict(
        Message.objects.filter(campaign=campaign)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    chunks = list(
        CampaignChunk.objects.filter(campaign=campaign).values("status", "size", "skipped")
    )
    done = [c for c in chunks if c["status"] != ChunkStatus.PENDING]
    skipped = sum(sum(c["skipped"].values()) for c in done)
    recent = Message.objects.filter(
        campaign=campaign,
        status=MessageStatus.SENT,
        sent_at__gte=now - dt.timedelta(seconds=window),
    ).count()
    written = sum(by_status.values())
    processed = sum(n for s, n in by_status.items() if s in _PROCESSED)
    done_size = sum(c["size"] for c in done)
    pending_size = sum(c["size"] for c in chunks if c["status"] == ChunkStatus.PENDING)
    per_recipient = written / done_size if done_size else 1.0
    expected = written + pending_size * per_recipient
    if campaign.status in (CampaignStatus.DONE, CampaignStatus.CANCELLED):
        percent = 100
    elif expected:
        percent = min(99, int(100 * processed / expected))
    else:
        percent = 0
    return Progress(
        status=campaign.status,
        recipients=campaign.recipients_total,
        chunks_total=len(chunks),
        chunks_done=len(done),
        by_status=by_status,
        skipped=skipped,
        per_second=round(recent / window, 1),
        percent=percent,
    )


@dataclass(slots=True)
class Report:
    #: (channel key, language) -> {status: count}
    totals: dict[tuple[str, str], dict[str, int]]
    #: (channel key, error) -> count, most frequent first
    failures: list[tuple[str, str, int]]
    #: reason -> recipients and channels not written
    skipped: dict[str, int]


def campaign_report(campaign: Campaign) -> Report:
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    rows = (
        Message.objects.filter(campaign=campaign)
        .values_list("channel__key", "language", "status")
        .annotate(n=Count("pk"))
        .order_by("channel__key", "language", "status")
    )
    for channel, language, status, n in rows:
        totals[(channel, language)][status] = n
    failures = [
        (channel, error or reason or "(no reason given)", n)
        for channel, error, reason, n in Message.objects.filter(
            campaign=campaign,
            status__in=[MessageStatus.FAILED, MessageStatus.BROKEN, MessageStatus.RETRYING],
        )
        .values_list("channel__key", "last_error", "status_reason")
        .annotate(n=Count("pk"))
        .order_by("-n")[:50]
    ]
    skipped: Counter = Counter()
    for chunk_skipped in CampaignChunk.objects.filter(campaign=campaign).values_list(
        "skipped", flat=True
    ):
        skipped.update(chunk_skipped)
    return Report(totals=dict(totals), failures=failures, skipped=dict(skipped.most_common()))


# --- a campaign's messages, for operators without the message admin ------------------------


@dataclass(frozen=True, slots=True)
class CampaignMessage:
    """What the campaign's messages page shows of one message: how it went, on which channel
    and in which language, to a masked address. No body, context, user or provider id."""

    channel: str
    language: str
    address: str  # masked
    status: str
    attempts: int
    sent_at: dt.datetime | None
    error: str  # the address in it masked too


#: The filters of the page (query parameter -> what it matches); nothing else is accepted.
CAMPAIGN_MESSAGE_FILTERS = ("status", "channel")


def address_mask(address: str) -> str:
    """Enough to tell addresses apart and spot a typo in a domain, not to write to anyone:
    ``a•••@example.com``; anything else keeps its last three characters: ``•••042``."""
    local, at, domain = address.rpartition("@")
    if at and local:
        return f"{local[0]}•••@{domain}"
    return "•••" + (address[-3:] if len(address) > 6 else "")


def campaign_messages(
    campaign: Campaign, *, filters: dict[str, str] | None = None
) -> models.QuerySet:
    """The campaign's messages (theirs only, whatever the filters say), oldest first, as the
    values ``campaign_message_rows`` turns into rows. ``filters``: ``status`` (a message
    status) and ``channel`` (a channel key); anything else raises CampaignError naming it."""
    filters = filters or {}
    unknown = sorted(set(filters) - set(CAMPAIGN_MESSAGE_FILTERS))
    if unknown:
        raise CampaignError(
            f"unknown filter(s): {', '.join(unknown)}; this page filters by "
            f"{' and '.join(CAMPAIGN_MESSAGE_FILTERS)} only"
        )
    rows = Message.objects.filter(campaign=campaign)
    if filters.get("status"):
        if filters["status"] not in MessageStatus.values:
            raise CampaignError(
                f"unknown status {filters['status']!r}; one of: {', '.join(MessageStatus.values)}"
            )
        rows = rows.filter(status=filters["status"])
    if filters.get("channel"):
        rows = rows.filter(channel__key=filters["channel"])
    return rows.order_by("pk").values_list(
        "channel__key",
        "language",
        "address",
        "status",
        "attempts",
        "sent_at",
        "last_error",
        "status_reason",
    )


def campaign_message_rows(values: Iterable[tuple]) -> list[CampaignMessage]:
    rows = []
    for channel, language, address, status, attempts, sent_at, error, reason in values:
        masked = address_mask(address)
        rows.append(
            CampaignMessage(
                channel=channel,
                language=language,
                address=masked,
                status=status,
                attempts=attempts,
                sent_at=sent_at,
                error=_address_replace(error or reason, address, masked),
            )
        )
    return rows


def _address_replace(text: str, address: str, masked: str) -> str:
    """``text`` (a provider's error often quotes the address) with the address masked."""
    if not address or not text:
        return text
    return re.sub(re.escape(address), lambda _: masked, text, flags=re.IGNORECASE)


def campaign_message_counts(campaign: Campaign) -> dict[str, int]:
    """{status: messages} of the campaign, most first, in one query."""
    return dict(
        Message.objects.filter(campaign=campaign)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by("-n", "status")
        .values_list("status", "n")
    )


REPORT_COLUMNS = (
    "message",
    "channel",
    "language",
    "address",
    "user_id",
    "status",
    "reason",
    "delivery_status",
    "attempts",
    "sent_at",
    "error",
)


def campaign_report_rows(campaign: Campaign) -> Iterator[list[Any]]:
    """One row per message, in id order, read in pages (for a streamed CSV)."""
    yield list(REPORT_COLUMNS)
    fields = (
        "pk",
        "uuid",
        "channel__key",
        "language",
        "address",
        "user_id",
        "status",
        "status_reason",
        "delivery_status",
        "attempts",
        "sent_at",
        "last_error",
    )
    last = 0
    while True:
        page = list(
            Message.objects.filter(campaign=campaign, pk__gt=last)
            .order_by("pk")
            .values_list(*fields)[:5000]
        )
        if not page:
            return
        for _pk, uuid, *rest in page:
            *head, sent_at, error = rest
            yield [str(uuid), *head, sent_at.isoformat() if sent_at else "", error]
        last = page[-1][0]
