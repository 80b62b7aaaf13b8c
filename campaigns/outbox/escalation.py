"""Fallback and escalation (README "Fallback and escalation"): a message on a first channel
(the inbox, a push), then, if it is not seen — or not delivered — within a delay, the same
message on the next channel (email), then the next (SMS).

``notify(..., channels=["inbox"], then=[("email", "15m"), ("sms", "1h")])`` writes every
step in one transaction: the first as usual, each later one as a ``scheduled`` row due at
the call's time plus its delay, pointing at the step before it (``escalates_from``). Then:

- the earlier message is seen (the inbox marks it, an email is opened or clicked, its
  "mark as read" link is followed) or, for a "not delivered" step, delivered: the steps
  still waiting are cancelled, with the reason (``escalations_stop``);
- the earlier message fails for good (a permanent error, attempts used up, a bounce): the
  next step is due at once (``escalations_hasten``);
- a step whose time has come is sent by the usual dispatch, whose recheck reads the earlier
  messages of its batch (one query, only for batches that hold a step) and cancels a step
  whose earlier message was seen meanwhile (``escalations_recheck``).

Only the calls that escalate pay: planning a later step costs one read of its recipients,
and the hot paths (notify, dispatch) read nothing more when there is no step.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from campaigns.domain.context import show
from campaigns.exceptions import InvalidArgument
from campaigns.models import Message, MessageStatus
from campaigns.outbox.catalog import catalog
from campaigns.outbox.transitions import escalations_cancel, messages_queue

SEEN, DELIVERED = "seen", "delivered"
#: Why the steps after an inbox message the person looked at are cancelled.
SEEN_ON_INBOX = "seen in the inbox"
CONDITIONS = {SEEN: "not seen", DELIVERED: "not delivered"}
#: How many later steps one call may have, and how late the last may be.
MAX_STEPS = 5
MAX_DELAY = dt.timedelta(days=30)
_DELAY = re.compile(r"^\s*(\d{1,7})\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
#: Delivery statuses that say the person saw the message, and those that say it arrived.
SEEN_STATUSES = frozenset({"opened", "clicked", "read"})
DELIVERED_STATUSES = frozenset({"delivered", *SEEN_STATUSES})
#: Delivery statuses that say a sent message never arrived: the next step goes at once.
LOST_STATUSES = frozenset({"bounced", "undelivered", "failed", "rejected"})


@dataclass(frozen=True, slots=True)
class Step:
    """One later step: its channel, its delay after the call, and what it waits for."""

    channel: str
    delay: dt.timedelta
    condition: str = SEEN

    def as_json(self) -> list:
        return [self.channel, self.delay.total_seconds(), self.condition]


def delay_parse(value: Any) -> dt.timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``, a number of seconds, or a timedelta;
    ValueError naming the problem."""
    if isinstance(value, dt.timedelta):
        delay = value
    elif isinstance(value, int) and not isinstance(value, bool):
        delay = dt.timedelta(seconds=value)
    elif isinstance(value, str) and (match := _DELAY.match(value)):
        delay = dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
    else:
        raise ValueError(
            f'the delay {show(value)} is not a duration: write it like "90s", "15m", '
            '"1h" or "2d", or give seconds or a timedelta'
        )
    if delay <= dt.timedelta(0):
        raise ValueError(f"the delay {show(value)} must be more than nothing")
    if delay > MAX_DELAY:
        raise ValueError(f"the delay {show(value)} is longer than {MAX_DELAY.days} days")
    return delay


def steps_check(then: Any) -> list[Step]:
    """``notify(then=…)``: a list of steps, each ``(channel, delay)``, ``(channel, delay,
    condition)`` or ``{"channel": …, "delay": …, "condition": …}``; the condition is "seen"
    (the default: goes if the earlier message was not seen) or "delivered". Delays count
    from the call and grow from one step to the next. InvalidArgument("then", …) naming the
    problem; nothing is read."""
    if then is None:
        return []
    if isinstance(then, str | bytes | Mapping) or not isinstance(then, list | tuple):
        raise InvalidArgument(
            "then",
            f'must be a list of steps like [("email", "15m"), ("sms", "1h")], got {show(then)}',
        )
    if len(then) > MAX_STEPS:
        raise InvalidArgument("then", f"has {len(then)} steps; at most {MAX_STEPS}")
    steps: list[Step] = []
    for number, item in enumerate(then, start=1):
        where = f"step {number}"
        if isinstance(item, Mapping):
            unknown = sorted(set(item) - {"channel", "delay", "condition"})
            if unknown:
                raise InvalidArgument(
                    "then",
                    f"{where} has unknown keys {unknown}; its keys: channel, delay, condition",
                )
            parts = (item.get("channel"), item.get("delay"), item.get("condition", SEEN))
        elif isinstance(item, list | tuple) and len(item) in (2, 3):
            parts = (*item, SEEN) if len(item) == 2 else tuple(item)
        else:
            raise InvalidArgument(
                "then",
                f"{where} must be (channel, delay) or (channel, delay, condition), "
                f"got {show(item)}",
            )
        channel, delay, condition = parts
        if not isinstance(channel, str) or not channel.strip():
            raise InvalidArgument(
                "then", f"{where}: the channel must be a channel key, got {show(channel)}"
            )
        try:
            delay = delay_parse(delay)
        except ValueError as error:
            raise InvalidArgument("then", f"{where}: {error}") from None
        if condition not in CONDITIONS:
            raise InvalidArgument(
                "then",
                f"{where}: the condition {show(condition)} is unknown; one of: "
                f"{', '.join(CONDITIONS)}",
            )
        if any(step.channel == channel for step in steps):
            raise InvalidArgument("then", f"{where}: the channel {channel!r} is a step already")
        if steps and delay < steps[-1].delay:
            raise InvalidArgument(
                "then",
                f"{where}: its delay ({delay}) comes before the step before it "
                f"({steps[-1].delay}); delays count from the call",
            )
        steps.append(Step(channel, delay, condition))
    return steps


def person_key(message: Message) -> str:
    """Who a planned message is for, the same across the steps of one call: the user, else
    the recipient mapping (without the language each channel's template chose)."""
    recipient = message.recipient
    if recipient.get("user_id"):
        return f"u{recipient['user_id']}"
    return repr(sorted((k, str(v)) for k, v in recipient.items() if k != "language"))


# --- after the messages are written ---------------------------------------------------------


def _ids(earlier: Iterable[int] | QuerySet) -> Any:
    return earlier if isinstance(earlier, QuerySet) else list(earlier)


def escalations_stop(
    earlier: Iterable[int] | QuerySet, *, how: str, conditions: Iterable[str] = (SEEN, DELIVERED)
) -> int:
    """The earlier messages (ids, or a queryset of them) were seen (or delivered, ``how``
    says which and where: "seen on inbox"): cancel the steps still waiting on them whose
    condition this meets, and every step after those. Returns how many were cancelled; one
    query when none waits."""
    return escalations_cancel(_ids(earlier), reason=how, conditions=list(conditions))


def escalations_hasten(earlier: Iterable[int], *, why: str) -> list[int]:
    """The earlier messages failed for good: the steps waiting on them are due now (queued,
    dispatched after commit), ``why`` kept as their reason. Returns their ids."""
    earlier = list(earlier)
    if not earlier:
        return []
    return messages_queue(
        Message.objects.filter(escalates_from_id__in=earlier, status=MessageStatus.SCHEDULED),
        status_reason=why[:255],
    )


def escalations_recheck(messages: list[Message]) -> dict[int, str]:
    """Just before sending a batch: for each step of an escalation in it, whether its earlier
    message was seen (or delivered) meanwhile; {message id: why it is cancelled}. Sets the
    reason a step goes on the others ("inbox message not seen in 15m"). One query, for the
    batches that hold a step; none for the others."""
    steps = [m for m in messages if m.escalates_from_id and m.escalation_condition]
    if not steps:
        return {}
    earlier = {
        row["pk"]: row
        for row in Message.objects.filter(pk__in={m.escalates_from_id for m in steps}).values(
            "pk",
            "status",
            "seen_at",
            "consumed_at",
            "delivery_status",
            "channel_id",
            "created_at",
            "last_error",
        )
    }
    channels = catalog().channels_by_id
    cancelled: dict[int, str] = {}
    for message in steps:
        row = earlier.get(message.escalates_from_id)
        if row is None:  # deleted since: nothing to wait for
            continue
        channel = channels.get(row["channel_id"])
        name = channel.key if channel is not None else "the earlier channel"
        seen = row["seen_at"] or row["consumed_at"] or row["delivery_status"] in SEEN_STATUSES
        delivered = (
            seen
            or row["delivery_status"] in DELIVERED_STATUSES
            or (
                row["status"] == MessageStatus.SENT
                and channel is not None
                and channel.backend_class.stores_messages  # an inbox row sent is in the inbox
            )
        )
        if seen:
            cancelled[message.pk] = f"seen on {name}"
        elif message.escalation_condition == DELIVERED and delivered:
            cancelled[message.pk] = f"delivered on {name}"
        elif not message.status_reason:
            planned = message.scheduled_at  # the call's time plus the step's delay
            waited = _short(planned - row["created_at"]) if planned else ""
            what = "not seen" if message.escalation_condition != DELIVERED else "not delivered"
            if row["status"] in (MessageStatus.FAILED, MessageStatus.BROKEN):
                message.status_reason = f"{name} failed: {row['last_error']}"[:255]
            else:
                message.status_reason = f"{name} {what}{f' in {waited}' if waited else ''}"
    return cancelled


def _short(delta: dt.timedelta) -> str:
    seconds = max(round(delta.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
