"""Use cases on existing messages: requeue failed ones, cancel pending ones."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet
from django.utils import timezone

from campaigns.domain.states import sources_of
from campaigns.models import Message, MessageStatus
from campaigns.outbox.transitions import messages_move, messages_queue

#: Processed messages that may be sent again (the state machine allows → queued).
REQUEUABLE = [
    s
    for s in sources_of(MessageStatus.QUEUED)
    if s in (MessageStatus.FAILED, MessageStatus.BROKEN, MessageStatus.CANCELLED)
]


def messages_requeue(*, queryset: QuerySet[Message]) -> int:
    """Send the given failed, broken or cancelled messages again (attempts start afresh).
    Messages in any other state are left alone. Returns how many were requeued. A step of an
    escalation sent again no longer waits on the earlier message: it goes, seen or not."""
    return len(
        messages_queue(
            queryset.filter(status__in=REQUEUABLE),
            attempts=0,
            status_reason="",
            escalation_condition="",
        )
    )


def failed_messages_requeue(*, since: dt.timedelta) -> int:
    """``retry_failed --since 8d``: requeue messages that failed within ``since``."""
    cutoff = timezone.now() - since
    return messages_requeue(
        queryset=Message.objects.filter(status=MessageStatus.FAILED, updated_at__gte=cutoff)
    )


#: Messages a person may cancel: not yet processed, and not being sent right now.
CANCELLABLE = [s for s in sources_of(MessageStatus.CANCELLED) if s != MessageStatus.SENDING]


def messages_cancel(*, queryset: QuerySet[Message], reason: str = "cancelled") -> int:
    """Cancel messages not yet processed (a message being sent right now is not stopped)."""
    return messages_move(
        queryset.filter(status__in=CANCELLABLE),
        to=MessageStatus.CANCELLED,
        status_reason=reason,
        next_attempt_at=None,
        lease_until=None,
    )
