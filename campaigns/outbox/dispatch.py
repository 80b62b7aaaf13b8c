"""Claim → render → send → record, for one batch of message ids.

The number of SQL queries is the same for a batch of 10 and of 500: one claim (select and
lease), one read of the messages' template versions, one write of all results. Each result is
journaled in Redis right after its send (see ``journal``), so a crash repeats at most one
message.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import time
import traceback
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from campaigns.conf import app_settings
from campaigns.domain.rendering import (
    CompiledTemplate,
    SharedPieces,
    TemplateError,
    plain_text,
    template_compile,
    template_render,
)
from campaigns.domain.windows import recipient_delivery_time
from campaigns.models import Message, MessageStatus, TemplateVersion
from campaigns.models.events import ADHOC_EVENT
from campaigns.ops.telemetry import batch_report
from campaigns.outbox.catalog import catalog, versions_get
from campaigns.outbox.claim import messages_claim
from campaigns.outbox.decisions import expired_decisions_record
from campaigns.outbox.digests import digest_items_load
from campaigns.outbox.escalation import escalations_hasten, escalations_recheck
from campaigns.outbox.journal import JournalWriter, journal_clear
from campaigns.outbox.outcomes import (
    EXPIRED,
    attempts_logged,
    attempts_record,
    held_outcome,
    outcome,
    outcome_for,
    outcomes_write,
)
from campaigns.outbox.queueing import BULK, drain_continue_later, drain_release, ready_take
from campaigns.outbox.ratelimit import limiter_for
from campaigns.outbox.selectors import campaigns_holding
from campaigns.outbox.transitions import messages_queue
from campaigns.recipients.addresses import addresses_deactivate
from campaigns.recipients.facts import recheck_facts_load
from campaigns.recipients.links import LINK_NAMES, footer_add, link_prefixes, message_links
from campaigns.signals import messages_failed, messages_sent, messages_succeeded
from channels.backends.base import (
    AddressRejected,
    Outgoing,
    SendResult,
    TransientError,
)
from channels.handler import backends
from channels.models import ChannelConfig

logger = logging.getLogger("notifier.dispatch")


@dataclass(slots=True)
class DispatchSummary:
    claimed: int = 0
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def as_dict(self) -> dict[str, Any]:
        return {"claimed": self.claimed, **self.counts}


def links_wanted(compiled: CompiledTemplate, channel: ChannelConfig) -> tuple[str, ...]:
    """The links a message needs signed: those its template (with its layout and partials)
    mentions, and the unsubscribe link of every email (its List-Unsubscribe header, a
    marketing event's footer)."""
    return tuple(
        name
        for name in LINK_NAMES
        if name in compiled.words
        or (name == "unsubscribe_url" and channel.backend_class.unsubscribe_headers)
    )


#: What a message's render context holds beyond its stored context: who it is for, its signed
#: links and a digest's items. Everything else is shared by the messages of an event with an
#: equal stored context, and rendered once for a batch of them (``SharedPieces``).
PERSONAL_NAMES = frozenset({"recipient", "digest", *LINK_NAMES})
#: A drain job, or a job sending the rows it has just written, grows its batches up to this
#: many times ``BATCH_SIZE`` while its channel is fast (``drain_batch_size``).
LEASED_BATCH_GROWTH = 5


def _render(
    message: Message,
    version: TemplateVersion | None,
    prefixes: dict[str, str] | None,
    digest: dict[str, Any] | None = None,
    pieces: SharedPieces | None = None,
    prepared: dict[int, tuple[CompiledTemplate, tuple[str, ...]]] | None = None,
) -> Outgoing:
    """``message`` rendered with ``version``. ``prepared`` keeps each version's compiled
    template and the links it needs for a batch of one channel's messages."""
    if message.event.key == ADHOC_EVENT:
        return _adhoc_outgoing(message, prefixes)
    if version is None:
        raise TemplateError(f"template {message.template_key} was deleted")
    if prepared is not None and version.pk in prepared:
        compiled, wanted = prepared[version.pk]
    else:
        compiled = template_compile(version)  # cached by the version's id: it never changes
        wanted = links_wanted(compiled, message.channel)
        if prepared is not None:
            prepared[version.pk] = compiled, wanted
    links = message_links(message, prefixes=prefixes, wanted=wanted)
    context = {**message.context, "recipient": message.recipient, **links}
    if digest is not None:  # a digest's items, read as it is rendered
        context["digest"] = digest
    rendered = template_render(compiled, context, pieces=pieces, shared=message.context)
    text = footer_add(rendered.text, message=message, links=links)
    message.subject, message.text, message.html = rendered.subject, text, rendered.html
    return _outgoing(
        message,
        links,
        subject=rendered.subject,
        text=text,
        html=rendered.html,
        link=rendered.link,
        image=rendered.image,
        body=rendered.data,
    )


def _outgoing(message: Message, links: dict[str, str], **content: Any) -> Outgoing:
    """What the backend is given for ``message``: its content (subject, text, html…) and
    links, with the message's own fields."""
    return Outgoing(
        id=message.pk,
        uuid=str(message.uuid),
        address=message.address,
        recipient=message.recipient,
        extra=message.extra,
        event_key=message.event.key,
        language=message.language,
        links=links,
        **content,
    )


def _adhoc_outgoing(message: Message, prefixes: dict[str, str] | None) -> Outgoing:
    """An ad-hoc message (``notify_text()``) as it was written: its stored subject, text and
    HTML, never read as a template. Links as for any message of its channel (an email's
    List-Unsubscribe)."""
    wanted = ("unsubscribe_url",) if message.channel.backend_class.unsubscribe_headers else ()
    links = message_links(message, prefixes=prefixes, wanted=wanted)
    return _outgoing(message, links, subject=message.subject, text=message.text, html=message.html)


def message_content(message: Message) -> tuple[str, str, str]:
    """What a message said: (subject, text, html). An inbox message keeps its bodies; others
    keep their subject and are rendered again from the template version they were made with
    (links signed anew)."""
    if message.text or message.html:
        return message.subject, message.text, message.html
    version = versions_get([message.template_version_id]).get(message.template_version_id)
    digest = digest_items_load([message.pk]).get(message.pk) if message.digest_key else None
    try:  # on a copy: rendering fills in the row's fields
        outgoing = _render(copy.copy(message), version, link_prefixes(), digest)
    except TemplateError:
        return message.subject, "", ""
    # Plain ``str``: the HTML engine's output is marked safe, and a page that puts it in an
    # attribute (an iframe's srcdoc) must escape it like any other value.
    return message.subject or outgoing.subject, outgoing.text, plain_text(outgoing.html)


def messages_drain(*, lane: str, slot: int = 1) -> DispatchSummary:
    """A drain job of a lane (``slot`` 1, or a helper's): take ready ids off the lane's list
    in batches and dispatch them until the list is empty (then its flag is dropped), or, in
    the bulk lane, until ``DRAIN_BUDGET`` seconds have passed (then a new drain job goes on,
    at the end of the queue, behind whatever transactional work came meanwhile). Batches
    after the first are sized by ``drain_batch_size``: a fast channel sends fewer, larger
    ones (each batch costs a claim, a recheck, one result statement and a log line)."""
    total = DispatchSummary()
    started = time.monotonic()
    budget, size = app_settings.DRAIN_BUDGET, app_settings.BATCH_SIZE
    while True:
        ids = ready_take(lane, size, slot=slot)
        if not ids:
            if drain_release(lane, slot=slot):
                continue
            return total
        batch_started = time.monotonic()
        summary = message_dispatch(message_ids=ids)
        total.claimed += summary.claimed
        for name, count in summary.counts.items():
            total.counts[name] += count
        now = time.monotonic()
        if lane == BULK and now - started > budget:
            drain_continue_later(lane, slot=slot)
            return total
        # The bulk lane's next batch fits the rest of its budget; the transactional lane's
        # takes about a budget's time, so a job that came meanwhile waits no longer than that.
        room = budget - (now - started) if lane == BULK else budget
        size = drain_batch_size(len(ids), now - batch_started, room)


def drain_batch_size(done: int, elapsed: float, room: float) -> int:
    """How many messages a drain job takes next, at the pace of its last batch (``done`` sent
    in ``elapsed`` seconds): as many as that pace sends in ``room`` seconds, at least
    ``BATCH_SIZE`` and at most ``LEASED_BATCH_GROWTH`` times as many."""
    size = app_settings.BATCH_SIZE
    if done <= 0:
        return size
    pace = elapsed / done
    if pace <= 0:
        return size * LEASED_BATCH_GROWTH
    return max(size, min(size * LEASED_BATCH_GROWTH, int(room / pace)))


def message_dispatch(*, message_ids: Iterable[int]) -> DispatchSummary:
    """Claim the given messages, render and send them, record every result."""
    return messages_send(messages_claim(message_ids=message_ids))


def messages_send_leased(messages: list[Message]) -> DispatchSummary:
    """Send messages this job has just written straight into ``sending`` (a campaign's chunk,
    ``transitions.messages_lease_new``), a batch at a time, for up to ``DRAIN_BUDGET``
    seconds; the rest go back to ``queued`` (the bulk lane: its drain job), so a job never
    keeps a worker from the transactional lane for long. Each job sends its own rows: as many
    chunks are sent at once as there are workers."""
    total = DispatchSummary()
    started = time.monotonic()
    budget, size = app_settings.DRAIN_BUDGET, app_settings.BATCH_SIZE
    start = 0
    while start < len(messages):
        if start:
            elapsed = time.monotonic() - started
            if elapsed > budget:
                _leased_hand_over(messages[start:], total)
                break
            size = leased_batch_size(start, elapsed, budget)
        summary = messages_send(messages[start : start + size], fresh=True)
        start += size
        total.claimed += summary.claimed
        for name, count in summary.counts.items():
            total.counts[name] += count
    return total


def leased_batch_size(done: int, elapsed: float, budget: float) -> int:
    """The next batch of a job sending its own rows: as many as the budget's rest allows at
    the pace of the ``done`` messages sent in ``elapsed`` seconds, at least ``BATCH_SIZE`` and
    at most ``LEASED_BATCH_GROWTH`` times as many (``drain_batch_size``). A fast channel sends
    a chunk in two or three batches (each batch has a cost of its own: a recheck, one result
    statement, a log line); a slow one keeps to ``BATCH_SIZE``, so the budget still bounds
    what a transactional job waits."""
    return drain_batch_size(done, elapsed, budget - elapsed)


def _leased_hand_over(rest: list[Message], summary: DispatchSummary) -> None:
    """What a job out of time did not send: held where its campaign was paused or cancelled
    meanwhile, queued (unattempted) for the lane's drain job otherwise."""
    held = campaigns_holding({m.campaign_id for m in rest})
    rows = [held_outcome(m, held[m.campaign_id]) for m in rest if m.campaign_id in held]
    if rows:
        outcomes_write(rows)
        for row in rows:
            summary.counts[row["status"]] += 1
    queued = [m.pk for m in rest if m.campaign_id not in held]
    if queued:
        messages_queue(Message.objects.filter(pk__in=queued), attempts=0)


def messages_send(messages: list[Message], *, fresh: bool = False) -> DispatchSummary:
    """Render, send and record a batch of messages held in ``sending`` by this job. ``fresh``
    rows were planned by this job a moment ago, from the users and opt-outs it had just
    read: they are not read again."""
    started = time.monotonic()
    summary = DispatchSummary()
    summary.claimed = len(messages)
    if not messages:
        return summary
    # The version each message was made with (a scheduled or retried one keeps its own).
    versions = versions_get(m.template_version_id for m in messages)
    outcomes, sendable = _messages_recheck(messages, facts=not fresh)
    by_channel: dict[int, list[Message]] = defaultdict(list)
    for message in sendable:
        by_channel[message.channel_id].append(message)

    # A digest's items, read now: every occurrence committed into its window is there (the
    # claim could not take the row while a notify() adding to it was uncommitted).
    digests = digest_items_load([m.pk for m in sendable if m.digest_key])
    for channel_messages in by_channel.values():
        outcomes.extend(_channel_send(channel_messages, versions, digests))

    logged = attempts_logged(outcomes)
    expired = [m for m in messages if m.status_reason == EXPIRED and m.status == "cancelled"]
    if logged or expired:
        with transaction.atomic():  # one commit (one WAL flush) for all of the batch's results
            outcomes_write(outcomes)
            if logged:
                attempts_record(logged)
            expired_decisions_record(expired)  # the person's timeline says why
    else:  # one statement (two with inbox rows), each atomic on its own
        outcomes_write(outcomes)
    journal_clear(row["id"] for row in outcomes)
    for row in outcomes:
        summary.counts[row["status"]] += 1
    disposable = [  # an inbox message is the inbox item itself: it stays
        m.pk
        for m in messages
        if m.status == MessageStatus.SENT
        and m.event.delete_after_processing
        and not m.channel.backend_class.stores_messages
    ]
    if disposable:
        Message.objects.filter(pk__in=disposable, status=MessageStatus.SENT).delete()

    sent = [m for m in messages if m.status == MessageStatus.SENT]
    failed = [m for m in messages if m.status in (MessageStatus.FAILED, MessageStatus.BROKEN)]
    if failed:  # the next step of an escalation goes at once
        by_channel_key: dict[str, list[int]] = defaultdict(list)
        for message in failed:
            by_channel_key[message.channel.key].append(message.pk)
        for key, ids in by_channel_key.items():
            escalations_hasten(ids, why=f"{key} failed for good")
    messages_sent.send(sender=Message, messages=messages)
    if sent:
        messages_succeeded.send(sender=Message, messages=sent)
    if failed:
        messages_failed.send(sender=Message, messages=failed)
    batch_report(messages=messages, outcomes=outcomes, started=started)  # logs and counters
    return summary


def _messages_recheck(
    messages: list[Message], *, facts: bool = True
) -> tuple[list[dict[str, Any]], list[Message]]:
    """Just before sending: cancel what expired, what is for a user deactivated since it was
    written, what was opted out since, and what the event's ``check_validity`` callable says
    is no longer valid; put back what falls outside its availability windows (a retry can
    land there). One query for the users and the opt-outs; the windows come from the catalog."""
    now = timezone.now()
    cat = catalog()
    channel_ids = {m.channel_id for m in messages}
    windows = {
        event_id: cat.windows(event_id, channel_ids) for event_id in {m.event_id for m in messages}
    }
    if facts:
        inactive, opted_out = recheck_facts_load(
            user_ids={m.user_id for m in messages},
            addresses={m.address for m in messages},
            event_ids={m.event_id for m in messages},
            channels={m.channel_id: m.channel for m in messages}.values(),
        )
    else:
        inactive, opted_out = set(), _nobody_opted_out
    stopped = escalations_recheck(messages)  # a later step whose earlier one was seen
    outcomes, sendable = [], []
    for message in messages:
        reason = stopped.get(message.pk, "")
        try:
            if reason:
                pass
            elif message.expires_at is not None and message.expires_at <= now:
                reason = EXPIRED
            elif message.user_id in inactive:  # mandatory events too, as notify() skips them
                reason = "inactive user"
            elif not message.event.mandatory and opted_out(
                message.user_id,
                message.address,
                message.event_id,
                message.channel_id,
                message.event.marketing,
            ):
                reason = "opted out"
            elif message.event.check_validity and not _validity_check(message):
                reason = "no longer valid"
            else:
                event_windows, channel_windows = windows[message.event_id]
                due = recipient_delivery_time(
                    message.recipient,
                    now=now,
                    default_tz=settings.TIME_ZONE,
                    event_windows=event_windows,
                    channel_windows=channel_windows[message.channel_id],
                )
                if due > now + dt.timedelta(seconds=1):
                    row = outcome(message, status=MessageStatus.SCHEDULED, next_attempt_at=due)
                    row["attempts"] = message.attempts = message.attempts - 1  # not an attempt
                    outcomes.append(row)
                    continue
        except Exception as error:
            summary = "".join(traceback.format_exception_only(error)).strip()
            outcomes.append(
                outcome(
                    message,
                    status=MessageStatus.BROKEN,
                    last_error=f"check_validity: {summary}"[:4000],
                    next_attempt_at=None,
                )
            )
            continue
        if reason:
            outcomes.append(
                outcome(
                    message,
                    status=MessageStatus.CANCELLED,
                    status_reason=reason,
                    next_attempt_at=None,
                )
            )
        else:
            sendable.append(message)
    return outcomes, sendable


def _nobody_opted_out(*_: Any) -> bool:
    return False


def _validity_check(message: Message) -> bool:
    return bool(import_string(message.event.check_validity)(message))


def _channel_send(
    messages: list[Message],
    versions: dict[int, TemplateVersion],
    digests: dict[int, dict[str, Any]],
) -> list[dict]:
    """Render and send one channel's messages of a batch; their result rows. Each message is
    rendered when the backend takes it (an email backend takes the next one while the server
    reads the current one); one whose template fails is ``broken``."""
    outcomes: list[dict[str, Any]] = []
    now = timezone.now()
    prefixes = link_prefixes()
    pieces = SharedPieces(PERSONAL_NAMES)
    prepared: dict[int, tuple[CompiledTemplate, tuple[str, ...]]] = {}

    def rendered(message: Message) -> Outgoing | None:
        try:
            version = versions.get(message.template_version_id)
            digest = digests.get(message.pk)
            return _render(message, version, prefixes, digest, pieces, prepared)
        except Exception as error:
            summary = "".join(traceback.format_exception_only(error)).strip()
            outcomes.append(
                outcome(
                    message,
                    status=MessageStatus.BROKEN,
                    last_error=summary[:4000],
                    next_attempt_at=None,
                )
            )
            return None

    if app_settings.DEBUG_SEND:
        for message in messages:
            if rendered(message) is not None:
                debug = outcome(
                    message, status=MessageStatus.DEBUG, next_attempt_at=None, last_error=""
                )
                outcomes.append(debug)
        return outcomes
    channel = messages[0].channel
    try:
        backend = backends[channel]  # kept open from one batch to the next
    except Exception as error:  # broken ones are broken; the others wait for the channel
        failure = TransientError(f"channel {channel.key!r} could not open: {error}")
        for message in messages:
            if (outgoing := rendered(message)) is not None:
                outcomes.append(outcome_for(message, SendResult(outgoing, error=failure), now))
        return outcomes

    # Each message until its result is in, with what it was rendered to once it is.
    pending: dict[int, tuple[Message, Outgoing | None]] = {m.pk: (m, None) for m in messages}
    dead: list[tuple[str, str, int | None, str]] = []
    limiter = limiter_for(channel)
    holds = _CampaignHolds({m.campaign_id for m in messages if m.campaign_id})

    def paced():  # the backend pulls each message once the channel's rate allows it
        for message in messages:
            if holds.state(message.campaign_id):  # paused or cancelled since the claim
                continue
            outgoing = rendered(message)
            if outgoing is None:  # broken: its outcome is written (and it takes no rate)
                del pending[message.pk]
                continue
            pending[message.pk] = (message, outgoing)
            if limiter is not None and not limiter.take():
                return
            yield outgoing

    journal = JournalWriter(content=channel.backend_class.stores_messages)
    try:
        for result in backend.send(paced()):
            message, _ = pending.pop(result.outgoing.id)
            kind = backend.recipient_key() or ""
            if isinstance(result.error, AddressRejected) and kind not in ("", "user_id"):
                # A user id is not an address: rejecting it must not silence the user everywhere.
                dead.append((kind, message.address, message.user_id, str(result.error)))
            row = outcome_for(message, result, timezone.now())
            journal.record(row)
            outcomes.append(row)
    except Exception as error:
        backends.discard(channel)  # its connection may be broken: the next batch opens anew
        failure = backend.classify(error)
        for message, outgoing in pending.values():
            outcomes.append(outcome_for(message, SendResult(outgoing, error=failure), now))
    else:  # what the rate limit held back goes back to wait; that was not an attempt
        later = timezone.now() + dt.timedelta(seconds=limiter.waited_too_long if limiter else 0)
        for message, _ in pending.values():
            state = holds.state(message.campaign_id)
            if state:
                outcomes.append(held_outcome(message, state))
                continue
            row = outcome(
                message,
                status=MessageStatus.RETRYING,
                next_attempt_at=later,
                last_error=f"rate limited: the channel allows {channel.rate_limit}/s",
            )
            row["attempts"] = message.attempts = message.attempts - 1
            outcomes.append(row)
    finally:
        journal.close()
    by_kind: dict[str, dict[str, tuple[int | None, str]]] = defaultdict(dict)
    for kind, address, user_id, reason in dead:
        by_kind[kind][address] = (user_id, reason)
    for kind, addresses in by_kind.items():
        addresses_deactivate(kind=kind, dead=addresses)
    return outcomes


class _CampaignHolds:
    """Whether a campaign in this batch was paused or cancelled after the claim: read from
    the database before a batch's first campaign message, then at most every
    ``INTERVAL`` seconds (a cancel waits for the batch, so the batch must stop soon)."""

    INTERVAL = 0.2

    def __init__(self, campaign_ids: set[int]):
        self.campaign_ids = campaign_ids
        self.states: dict[int, str] = {}
        self.read_at = float("-inf")

    def state(self, campaign_id: int | None) -> str:
        if not campaign_id:
            return ""
        if time.monotonic() - self.read_at >= self.INTERVAL:
            self.states = campaigns_holding(self.campaign_ids)
            self.read_at = time.monotonic()
        return self.states.get(campaign_id, "")
