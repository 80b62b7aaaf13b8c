"""A campaign's progress (counts by status, throughput, percent), its report (totals, failures
by reason, skips), the CSV of its messages, and the read-only, masked list of its messages for
operators without the message admin. Reads only; ``campaign_progress`` finishes a campaign
that is done."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models import Count, Sum
from django.utils import timezone

from campaigns.domain.states import FINAL
from campaigns.exceptions import CampaignError
from campaigns.models import (
    Campaign,
    CampaignChunk,
    CampaignStatus,
    Message,
    MessageDayCount,
    MessageStatus,
)
from campaigns.models.campaigns import ChunkStatus

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
    def sending(self) -> int:
        """Messages a worker is sending right now (after a cancel: until their batch stops)."""
        return self.count(MessageStatus.SENDING)

    @property
    def finished(self) -> bool:
        """Nothing will change any more: done, or cancelled with no batch still sending."""
        return self.status in (CampaignStatus.DONE, CampaignStatus.CANCELLED) and not self.sending


def campaign_progress(campaign: Campaign, *, window: float = 10.0) -> Progress:
    """Counts by status, skips, throughput over the last ``window`` seconds, and a percent
    that reaches 100 when nothing is left to do. Reads only (the sweep, or the panel's poll
    through ``campaign_finish_if_done``, finishes a campaign that is done)."""
    now = timezone.now()
    by_status = campaign_message_counts(campaign)
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
    for channel, language, status, n in (
        _purged(campaign).values_list("channel", "language", "status").annotate(n=Sum("count"))
    ):
        entry = totals[(channel, language)]
        entry[status] = entry.get(status, 0) + n
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


#: The filters of the page (query parameter -> what it matches); nothing else is accepted.
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


def _purged(campaign: Campaign) -> models.QuerySet:
    """The counts of the campaign's messages the retention deleted (README "Retention"):
    added to the live rows' counts, so a report's totals stay what they were."""
    return MessageDayCount.objects.filter(campaign=campaign).order_by()


def campaign_message_counts(campaign: Campaign) -> dict[str, int]:
    """{status: messages} of the campaign, most first: the live rows and the deleted ones'
    daily counts, in two queries."""
    live = (
        Message.objects.filter(campaign=campaign)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("status", "n")
    )
    purged = (
        _purged(campaign).values_list("status").annotate(n=Sum("count")).values_list("status", "n")
    )
    counts: Counter = Counter()
    for status, n in [*live, *purged]:
        counts[status] += n
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


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


#: What a spreadsheet reads as a formula when a cell starts with it (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet shows as text: one starting like a formula gets a leading
    apostrophe (an address may be ``=1+1@example.com``; a provider's error may say anything)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def campaign_report_rows(campaign: Campaign, *, masked: bool = False) -> Iterator[list[Any]]:
    """One row per message, in id order, read in pages (for a streamed CSV). ``masked``: for
    whoever may not open messages (Marketing), each address masked as on the campaign's
    messages page (in the error text too), and no user id. Text cells that a spreadsheet
    would run as a formula are written as text (``csv_cell``)."""
    for row in _report_rows(campaign, masked=masked):
        yield [csv_cell(value) for value in row]


def _report_rows(campaign: Campaign, *, masked: bool) -> Iterator[list[Any]]:
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
        for _pk, uuid, channel, language, address, user_id, *rest in page:
            *middle, sent_at, error = rest
            if masked:
                shown = address_mask(address)
                error, address, user_id = _address_replace(error, address, shown), shown, ""
            sent = sent_at.isoformat() if sent_at else ""
            yield [str(uuid), channel, language, address, user_id, *middle, sent, error]
        last = page[-1][0]
