"""Trigger behaviours and idempotency: what a new trigger does when its recipient already has
messages of the event (send once, once while pending, only the latest …), and what a repeated
``idempotency_key`` does.

The keys are computed by the plan (``Message.dedupe_key``); here they are applied under a
transaction-scoped advisory lock per key on PostgreSQL, so concurrent calls serialise per
recipient, with partial unique indexes as the net under it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connection, models, transaction

from campaigns.domain.states import ACTIVE, MessageStatus
from campaigns.exceptions import IdempotencyConflict
from campaigns.models import Message, NotifyRequest
from campaigns.models.events import Trigger
from campaigns.outbox.plan import SEND_ONCE, NotifyResult, Skipped
from campaigns.outbox.transitions import messages_move


def payload_hash(*parts: Any) -> str:
    def default(value):
        if isinstance(value, ContentType):
            return value.natural_key()
        if isinstance(value, models.Model):
            return [value._meta.label, value.pk]
        return str(value)

    encoded = json.dumps(parts, default=default, sort_keys=True)
    return hashlib.sha256(encoded.encode()).hexdigest()


def idempotency_claim(key: str, payload: str, skipped: list[Skipped]) -> NotifyResult | None:
    """None when this call is the first with ``key`` (it is now recorded); else the first
    call's result. A different payload under the same key raises IdempotencyConflict."""
    earlier = NotifyRequest.objects.filter(key=key).first()
    if earlier is None:
        with transaction.atomic():  # a concurrent first call makes this insert wait, then fail
            NotifyRequest.objects.create(key=key, payload_hash=payload)
        return None
    if earlier.payload_hash != payload:
        raise IdempotencyConflict(key)
    return NotifyResult(
        messages=list(Message.objects.filter(idempotency_key=key).order_by("id")),
        skipped=[Skipped(**item) for item in earlier.skipped],
    )


def triggers_apply(
    messages: list[Message], *, behaviour: str, now: dt.datetime, dry_run: bool = False
) -> tuple[list[Message], list[tuple[Message, str]]]:
    """Apply the trigger behaviour under a lock per key (so concurrent calls serialise per
    recipient); returns the messages to write and the refused ones with their reason. A dry
    run reads the same rows without locking or cancelling anything."""
    keyed = [m for m in messages if m.dedupe_key]
    if not keyed:
        return messages, []
    keys = sorted({m.dedupe_key for m in keyed})
    if connection.vendor == "postgresql" and not dry_run:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
                [keys],
            )
    if behaviour == Trigger.LAST_ONLY and not dry_run:
        messages_move(
            Message.objects.filter(dedupe_key__in=keys).exclude(status=MessageStatus.SENDING),
            to=MessageStatus.CANCELLED,
            now=now,
            status_reason="superseded by a newer trigger",
            next_attempt_at=None,
            lease_until=None,
        )
        blocking: set[str] = set()
    elif behaviour == Trigger.LAST_ONLY:  # a dry run: what would be superseded is not refused
        blocking = set()
    else:
        states = [*ACTIVE, MessageStatus.SENT] if behaviour in SEND_ONCE else list(ACTIVE)
        blocking = set(
            Message.objects.filter(dedupe_key__in=keys, status__in=states).values_list(
                "dedupe_key", flat=True
            )
        )
    kept, refused, seen = [], [], set()
    for message in messages:
        key = message.dedupe_key
        if key and (key in blocking or (key in seen and behaviour != Trigger.LAST_ONLY)):
            refused.append((message, "duplicate"))
            continue
        if key and key in seen:  # last_only: the latest trigger of this call wins
            kept = [m for m in kept if m.dedupe_key != key]
        seen.add(key)
        kept.append(message)
    return kept, refused
