"""The dry run: who would get a campaign if it were sent now, per channel and language, who
would not and why, and who waits for a time or window. It plans with the same code as the
fan-out, chunk by chunk, and writes nothing; a large audience's dry run runs as an RQ job whose
progress and result wait in Redis."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from campaigns.broadcast.audiences import audience_recipients, audience_size, source_chunks
from campaigns.broadcast.planning import campaign_plan, campaign_problems, context_ok
from campaigns.connections import redis_connection
from campaigns.models import Campaign, MessageStatus
from campaigns.outbox.plan import Skipped
from campaigns.outbox.queueing import dry_run_after_commit
from campaigns.outbox.triggers import triggers_apply


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
    if not campaign.event.is_active or not context_ok(campaign):
        report.recipients = audience_size(campaign.audience)
        return report  # the plan refuses every chunk for the reason the problems give
    seen: set[tuple[int, str]] = set()
    chunks = source_chunks(campaign.audience)
    total = sum(size for _, _, size in chunks)
    for first_id, last_id, size in chunks:
        if progress is not None:
            progress(report.recipients, total)
        people = audience_recipients(campaign.audience, first_id, last_id)
        report.recipients += size
        result = campaign_plan(campaign, people, seen=seen, now=now)
        kept, duplicates = triggers_apply(
            result.messages, behaviour=campaign.event.trigger, now=now, dry_run=True
        )
        result.messages = kept
        result.skipped.extend(
            Skipped(m.recipient, m.channel.key, reason) for m, reason in duplicates
        )
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
    dry_run_after_commit(campaign.pk)
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
