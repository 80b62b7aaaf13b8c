"""The one service that writes a message's status.

Every move of a Message row from one state to another goes through a function here, and each
only moves rows whose current state allows the move (``campaigns.domain.states.TRANSITIONS``):
the guard is part of the statement (``WHERE status IN (…)``), so a row another process moved
meanwhile is left alone rather than forced. Nothing else in the code base writes ``status``
(``tests/test_architecture.py`` checks).

- ``messages_move``: a set of rows to one state (cancel, pause, fail …);
- ``messages_queue``: rows to ``queued`` under a queue lease, their dispatch enqueued after
  commit — the "queue these ids" step of requeue, resume and the sweep;
- ``messages_claim``: a dispatch job's rows to ``sending`` under a lease;
- ``messages_lease_new``: rows not yet written, due now, written straight into ``sending`` by
  the job that sends them (a campaign's chunk), so no claim has to read them back;
- ``message_schedule_new``: a row not yet written to wait for its digest window's end;
- ``outcomes_record``: a batch's results, each row from ``sending`` to its own outcome.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.base import ModelState
from django.utils import timezone

from campaigns.conf import app_settings
from campaigns.domain.states import (
    TRANSITIONS,
    WAITING,
    IllegalTransition,
    MessageStatus,
    sources_of,
    transition_check,
)
from campaigns.models import Message
from campaigns.outbox.bulk import bound_cursor, rows_update
from campaigns.outbox.queueing import BULK, TRANSACTIONAL, dispatch_after_commit


def messages_move(
    queryset: QuerySet[Message],
    *,
    to: str,
    now: dt.datetime | None = None,
    **fields: Any,
) -> int:
    """Move the rows of ``queryset`` whose state allows it to ``to``, setting ``fields`` too.
    Returns how many moved; rows in any other state are left as they are."""
    if "status" in fields:
        raise TypeError("give the target state as to=, not status=")
    return queryset.filter(status__in=sources_of(to)).update(
        status=to, updated_at=now or timezone.now(), **fields
    )


def messages_queue(
    queryset: QuerySet[Message],
    *,
    now: dt.datetime | None = None,
    limit: int | None = None,
    enqueue: bool = True,
    **fields: Any,
) -> list[int]:
    """Move the rows of ``queryset`` that may be queued (and that no other process holds) to
    ``queued`` under a fresh queue lease, due now unless ``fields`` say otherwise; their
    dispatch jobs are enqueued after the transaction commits (``enqueue=False``: the caller
    dispatches them itself). At most ``limit`` rows. Returns the ids queued."""
    now = now or timezone.now()
    fields.setdefault("next_attempt_at", now)
    fields.setdefault("lease_until", now + dt.timedelta(seconds=app_settings.QUEUED_TIMEOUT))
    with transaction.atomic():
        rows = (
            queryset.filter(status__in=sources_of(MessageStatus.QUEUED))
            .select_for_update(skip_locked=True)
            .values_list("id", "channel_id", "campaign_id")
        )
        rows = list(rows[:limit] if limit is not None else rows)
        if not rows:
            return []
        ids = [row_id for row_id, _, _ in rows]
        Message.objects.filter(id__in=ids).update(
            status=MessageStatus.QUEUED, updated_at=now, **fields
        )
        if enqueue:  # a campaign's messages go in the bulk lane
            lanes: dict[str, dict[int, list[int]]] = {TRANSACTIONAL: {}, BULK: {}}
            for row_id, channel_id, campaign_id in rows:
                lane = lanes[BULK if campaign_id else TRANSACTIONAL]
                lane.setdefault(channel_id, []).append(row_id)
            for lane, by_channel in lanes.items():
                dispatch_after_commit(by_channel, lane=lane)
    return ids


# --- the claim ----------------------------------------------------------------------------------


def messages_claim(
    ids: Sequence[int], *, now: dt.datetime, lease_until: dt.datetime
) -> list[Message]:
    """Take the rows among ``ids`` still claimable (``queued``, or waiting and due) into
    ``sending`` under a lease, counting the attempt; returns them as they are now, by id.

    On PostgreSQL one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``
    does it: rows locked by another worker are skipped, so two jobs carrying the same ids
    never both send a message."""
    if connection.vendor == "postgresql":
        return _claim_update_returning(list(ids), now=now, lease_until=lease_until)
    return _claim_orm(list(ids), now=now, lease_until=lease_until)


def _claimable_states() -> tuple[list[str], list[str]]:
    """(states claimable at once, states claimable when due): those the state machine lets
    move to ``sending``."""
    allowed = set(sources_of(MessageStatus.SENDING))
    now_states = [s for s in (MessageStatus.QUEUED,) if s in allowed]
    due_states = [str(s) for s in WAITING if s in allowed]
    return now_states, due_states


def _claim_update_returning(
    ids: list[int], *, now: dt.datetime, lease_until: dt.datetime
) -> list[Message]:
    meta = Message._meta
    quote = connection.ops.quote_name
    fields = meta.concrete_fields
    column = {f.attname: quote(f.column) for f in fields}
    table = quote(meta.db_table)
    now_states, due_states = _claimable_states()
    # Identifiers come from model metadata; every value is a parameter.
    sql = (
        f"UPDATE {table} SET {column['status']} = %s, {column['lease_until']} = %s, "  # noqa: S608
        f"{column['attempts']} = {column['attempts']} + 1, {column['updated_at']} = %s "
        f"WHERE {column['id']} IN (SELECT {column['id']} FROM {table} "
        f"WHERE {column['id']} = ANY(%s) AND ({column['status']} = ANY(%s) OR "
        f"({column['status']} = ANY(%s) AND {column['next_attempt_at']} <= %s)) "
        f"ORDER BY {column['id']} FOR UPDATE SKIP LOCKED) "
        f"RETURNING {', '.join(column[f.attname] for f in fields)}"
    )
    params = [MessageStatus.SENDING, lease_until, now, ids, now_states, due_states, now]
    with bound_cursor(connection) as cursor:  # one statement: atomic on its own
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    converters = [
        (
            index,
            field,
            field.get_db_converters(connection) + connection.ops.get_db_converters(field),
        )
        for index, field in enumerate(fields)
    ]
    converters = [(index, field, funcs) for index, field, funcs in converters if funcs]
    names = [f.attname for f in fields]
    # The stored context of a fan-out's messages is one text: read once per batch (nothing
    # changes a message's context in place; rendering copies it).
    context_at = names.index("context")
    contexts: dict[str, Any] = {}
    messages = []
    for row in rows:
        values = list(row)
        text = values[context_at]
        for index, model_field, funcs in converters:
            if index == context_at and text in contexts:
                continue
            for func in funcs:
                values[index] = func(values[index], model_field, connection)
        if text in contexts:
            values[context_at] = contexts[text]
        elif isinstance(text, str):
            contexts[text] = values[context_at]
        messages.append(_message_loaded(dict(zip(names, values, strict=True)), connection.alias))
    messages.sort(key=lambda m: m.pk)
    return messages


def _message_loaded(values: dict[str, Any], alias: str) -> Message:
    """A Message from every column of a row it has read, as ``Model.from_db`` makes it but
    without ``Model.__init__`` (a setattr through a descriptor per field, and the init
    signals, which Message has no receiver of: a test sees to it)."""
    message = Message.__new__(Message)
    message._state = state = ModelState()
    state.adding, state.db = False, alias
    message.__dict__.update(values)
    return message


def _claim_orm(ids: list[int], *, now: dt.datetime, lease_until: dt.datetime) -> list[Message]:
    now_states, due_states = _claimable_states()
    with transaction.atomic():
        messages = list(
            Message.objects.filter(id__in=ids)
            .filter(Q(status__in=now_states) | Q(status__in=due_states, next_attempt_at__lte=now))
            .select_for_update(skip_locked=True)
            .order_by("id")
        )
        Message.objects.filter(id__in=[m.pk for m in messages]).update(
            status=MessageStatus.SENDING,
            lease_until=lease_until,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    for message in messages:
        message.status = MessageStatus.SENDING
        message.lease_until = lease_until
        message.attempts += 1
    return messages


def messages_lease_new(
    messages: Iterable[Message], *, now: dt.datetime, lease_until: dt.datetime
) -> list[Message]:
    """Planned messages (not written yet) due now, to be written and sent by this job: each
    ``queued`` one becomes ``sending`` under ``lease_until``, its first attempt counted, as a
    claim would leave it. Returns those it leased; the others (scheduled …) are untouched."""
    leased = []
    for message in messages:
        if message.status == MessageStatus.QUEUED:
            message.status = MessageStatus.SENDING
            message.lease_until = lease_until
            message.attempts = 1
            message.updated_at = now
            leased.append(message)
    return leased


def message_schedule_new(message: Message, *, at: dt.datetime) -> None:
    """A planned message (not written yet) to be written waiting until ``at`` (a digest's
    window end) instead of going now: ``scheduled``, without a queue lease."""
    message.status = MessageStatus.SCHEDULED
    message.next_attempt_at = at
    message.lease_until = None


# --- results ------------------------------------------------------------------------------------


def outcomes_record(rows: Iterable[dict[str, Any]], fields: Sequence[str]) -> int:
    """Write a batch's results: each row (``id``, ``status`` and ``fields``) moves from
    ``sending`` to its own outcome, in one statement; a row no longer ``sending`` (the sweep
    reclaimed it) is left alone. Raises IllegalTransition for an outcome ``sending`` cannot
    become."""
    rows = list(rows)
    allowed = TRANSITIONS[MessageStatus.SENDING]
    for row in rows:
        if row["status"] not in allowed:
            raise IllegalTransition(f"a sending message cannot become {row['status']}")
    fields = ["status", *(name for name in fields if name != "status")]
    return rows_update(Message, rows, fields, only_if={"status": MessageStatus.SENDING})


def message_state(message: Message, *, to: str, now: dt.datetime | None = None, **fields) -> None:
    """Move one loaded message to ``to`` (IllegalTransition when its state forbids it, or when
    another process moved it meanwhile), saving ``fields`` with it."""
    if to not in TRANSITIONS[message.status]:
        raise IllegalTransition(f"a {message.status} message cannot become {to}")
    moved = messages_move(Message.objects.filter(pk=message.pk), to=to, now=now, **fields)
    if not moved:
        message.refresh_from_db(fields=["status"])
        raise IllegalTransition(f"a {message.status} message cannot become {to}")
    message.status = to
    for name, value in fields.items():
        setattr(message, name, value)


# --- escalation (outbox/escalation.py) -----------------------------------------------------------

#: The states of a later step that has not gone yet: seeing the earlier message cancels it.
_STEP_WAITING = [
    s
    for s in (
        MessageStatus.PENDING,
        MessageStatus.SCHEDULED,
        MessageStatus.QUEUED,
        MessageStatus.RETRYING,
        MessageStatus.PAUSED,
    )
    if MessageStatus.CANCELLED in TRANSITIONS[s]
]


def escalations_cancel(
    earlier: Any, *, reason: str, conditions: Sequence[str], now: dt.datetime | None = None
) -> int:
    """Cancel the later steps of an escalation that still wait on ``earlier`` (message ids,
    or a queryset of them) and whose condition is one of ``conditions``, then the steps after
    those, whatever theirs: one query per step of the chain (one when none waits). Returns
    how many were cancelled."""
    now = now or timezone.now()
    cancelled = 0
    level = Message.objects.filter(
        escalates_from_id__in=earlier, escalation_condition__in=list(conditions)
    )
    for _ in range(16):  # a chain is at most a few steps long
        ids = list(level.values_list("id", flat=True))
        if not ids:
            break
        cancelled += Message.objects.filter(id__in=ids, status__in=_STEP_WAITING).update(
            status=MessageStatus.CANCELLED,
            status_reason=reason[:255],
            next_attempt_at=None,
            lease_until=None,
            updated_at=now,
        )
        level = Message.objects.filter(escalates_from_id__in=ids)
    return cancelled


def planned_due_now(messages: Iterable[Message], *, now: dt.datetime) -> None:
    """Planned rows (not written yet) that were to wait, due now instead: ``queued`` under a
    queue lease, as notify() writes a row due at once (a later step of an escalation whose
    earlier step could not be planned for its recipient)."""
    for message in messages:
        transition_check(message.status, MessageStatus.QUEUED)
        message.status = MessageStatus.QUEUED
        message.next_attempt_at = now
        message.lease_until = now + dt.timedelta(seconds=app_settings.QUEUED_TIMEOUT)
