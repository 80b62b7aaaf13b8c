"""Digests in the send path: a digested event's planned messages become one message per
recipient, channel and window, holding an item per occurrence.

``notify()`` for a digested event (and only then: the common path gains no query) reads the
recipients' chosen frequencies where the event lets them choose (one query), and, for each
planned message that is digested, *upserts* the window's message — one
``INSERT … ON CONFLICT (digest_key) … DO UPDATE`` on the partial unique index over active
rows, ``message_one_digest_per_window`` — and inserts the occurrence's ``DigestItem``, in the
transaction of the call. So:

- two workers (or threads) digesting into one window at once write one message: the second
  INSERT finds the first's row (waiting for its commit) and adds its item to it;
- the message is the outbox row: scheduled at the window's end, it is sent by the normal
  sweep and dispatch, which read its items when it is rendered (``digest_items_load``);
- an occurrence whose window's message is already on its way (queued, sending, retrying:
  the upsert's ``WHERE`` refuses those, and the row lock it takes keeps a claim from taking a
  row whose items are not committed yet) goes into the next window, so nothing is lost and
  nothing is sent twice.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from campaigns.domain.digests import (
    Frequency,
    digest_context,
    digest_key,
    digest_window,
    zone,
)
from campaigns.domain.states import ACTIVE, MessageStatus
from campaigns.models import DigestItem, DigestPreference, Event, Message
from campaigns.outbox.bulk import row_upsert, rows_insert
from campaigns.outbox.transitions import message_schedule_new

#: The states in which a window's message still takes new items.
OPEN = (MessageStatus.PENDING, MessageStatus.SCHEDULED)


def frequencies_load(event: Event, messages: list[Message]) -> dict[tuple[str, Any], str]:
    """The frequency each recipient chose for ``event``, by ("u", user id) or ("a", address):
    one query, none when the event lets nobody choose."""
    if not event.digest_choice or not messages:
        return {}
    user_ids = {m.user_id for m in messages if m.user_id}
    addresses = {m.address.lower() for m in messages if not m.user_id}
    who = Q(user_id__in=user_ids) | Q(user__isnull=True, address__in=addresses)
    return {
        ("u", user_id) if user_id else ("a", address): frequency
        for user_id, address, frequency in DigestPreference.objects.filter(
            who, event=event
        ).values_list("user_id", "address", "frequency")
    }


@dataclass(slots=True)
class Digested:
    """A planned message of a digested event: the occurrence, and its window."""

    message: Message
    frequency: str
    end: dt.datetime  # the window's end: when its digest is due


def digests_plan(
    messages: list[Message], *, event: Event, now: dt.datetime
) -> tuple[list[Digested], list[Message]]:
    """(digested, immediate): the planned messages of a digested event split by each
    recipient's frequency (theirs where the event lets them choose, else the event's). A
    digested one is keyed and scheduled at its window's end (or later, where availability
    windows put it)."""
    chosen = frequencies_load(event, messages)
    digested, immediate = [], []
    for message in messages:
        who = ("u", message.user_id) if message.user_id else ("a", message.address.lower())
        frequency = chosen.get(who, event.digest) if event.digest_choice else event.digest
        if frequency == Frequency.IMMEDIATELY:
            immediate.append(message)
            continue
        item = Digested(message, frequency, now)
        _window_set(item, event=event, at=max(now, message.scheduled_at or now))
        digested.append(item)
    return digested, immediate


def _window_set(item: Digested, *, event: Event, at: dt.datetime) -> None:
    """Key and schedule ``item``'s message for the window of its frequency that holds
    ``at``."""
    message = item.message
    tz = zone(message.recipient.get("tz"), settings.TIME_ZONE)
    _, item.end = digest_window(item.frequency, at=at, tz=tz, daily_at=event.digest_at)
    identity = f"u{message.user_id}" if message.user_id else message.address.lower()
    message.digest_key = digest_key(
        event_id=event.pk, channel_id=message.channel_id, identity=identity, end=item.end
    )
    message_schedule_new(message, at=max(item.end, message.next_attempt_at or item.end))


def digests_write(digested: list[Digested], *, event: Event, now: dt.datetime) -> list[Message]:
    """Upsert each digested message's window row and add the occurrence to it, in the
    current transaction (the caller's ``atomic``). Returns the window messages (their ids
    are those of the rows written or found)."""
    items = []
    for item in digested:
        message = item.message
        for _ in range(3):  # the next window when this one's message is on its way
            found = _upsert(message)
            if found is not None:
                message.pk, message.uuid = found
                message._state.adding = False
                break
            _window_set(item, event=event, at=item.end)
        else:  # three windows all on their way at once cannot happen; say so if it does
            raise RuntimeError(f"no open digest window for {message.digest_key}")
        items.append(DigestItem(message_id=message.pk, context=message.context, created_at=now))
    rows_insert(DigestItem, items, ids=False)
    return [item.message for item in digested]


def _upsert(message: Message) -> tuple[int, Any] | None:
    """The window's message: inserted, or the open one found (locked until commit); None
    when the window's message is already queued or sent."""
    if connection.vendor != "postgresql":
        return _upsert_orm(message)
    quote = connection.ops.quote_name
    meta = Message._meta
    column = {f.attname: quote(f.column) for f in meta.concrete_fields}
    active = ", ".join(f"'{s.value}'" for s in ACTIVE)  # states are fixed identifiers
    open_states = ", ".join(f"'{s.value}'" for s in OPEN)
    return row_upsert(
        Message,
        message,
        # The partial index's predicate, as Django writes it: PostgreSQL infers the index.
        conflict=(
            f"({column['digest_key']}) WHERE (NOT ({column['digest_key']} = '') "
            f"AND {column['status']} IN ({active}))"
        ),
        update=(
            f"{column['context']} = EXCLUDED.{column['context']}, "
            f"{column['updated_at']} = EXCLUDED.{column['updated_at']}"
        ),
        update_where=f"t.{column['status']} IN ({open_states})",
        returning=f"{column['id']}, {column['uuid']}",
    )


def _upsert_orm(message: Message) -> tuple[int, Any] | None:
    with transaction.atomic():
        found = (
            Message.objects.filter(digest_key=message.digest_key, status__in=ACTIVE)
            .select_for_update()
            .values_list("id", "uuid", "status")
            .first()
        )
        if found is not None:
            return found[:2] if found[2] in OPEN else None
        rows_insert(Message, [message])
        return message.pk, message.uuid


def digest_items_load(message_ids: list[int]) -> dict[int, dict[str, Any]]:
    """``digest`` of each digest message among ``message_ids`` (its items, oldest first):
    one query."""
    if not message_ids:
        return {}
    items: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for message_id, context in DigestItem.objects.filter(message_id__in=message_ids).values_list(
        "message_id", "context"
    ):
        items[message_id].append(context)
    return {message_id: digest_context(items[message_id]) for message_id in message_ids}
