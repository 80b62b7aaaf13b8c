"""The message state machine: the states a Message row can be in, and which moves between
them are allowed (README "Message states"). Pure: no database; ``campaigns.outbox.transitions``
is the one service that writes a message's status, and only along these moves."""

from __future__ import annotations

from django.db import models


class MessageStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # written, not yet handed to a worker
    SCHEDULED = "scheduled", "Scheduled"  # waits for its time
    QUEUED = "queued", "Queued"  # a dispatch job carries it
    SENDING = "sending", "Sending"  # claimed by a worker, under a lease
    SENT = "sent", "Sent"
    RETRYING = "retrying", "Retrying"  # a transient error; next_attempt_at says when
    FAILED = "failed", "Failed"  # permanent error, or attempts used up
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"
    BROKEN = "broken", "Broken"  # could not be built or rendered; never retried
    DEBUG = "debug", "Debug"  # rendered but not delivered (NOTIFIER DEBUG_SEND)
    PAUSED = "paused", "Paused"  # its campaign is paused; resuming queues it again


#: Rows a sweep hands to workers once next_attempt_at has come.
WAITING = (MessageStatus.PENDING, MessageStatus.SCHEDULED, MessageStatus.RETRYING)
#: Rows a dispatch job may claim.
CLAIMABLE = (*WAITING, MessageStatus.QUEUED)
#: Rows whose lease_until bounds how long they may stay so.
LEASED = (MessageStatus.QUEUED, MessageStatus.SENDING)
#: Rows not yet processed: what trigger_once and last_only look at.
ACTIVE = (*CLAIMABLE, MessageStatus.SENDING, MessageStatus.PAUSED)
#: Rows that will not change any more.
FINAL = (
    MessageStatus.SENT,
    MessageStatus.FAILED,
    MessageStatus.CANCELLED,
    MessageStatus.SKIPPED,
    MessageStatus.BROKEN,
    MessageStatus.DEBUG,
)

#: Rows an operator looks at: they did not go through (yet).
TROUBLE = (MessageStatus.FAILED, MessageStatus.BROKEN, MessageStatus.RETRYING)

S = MessageStatus
#: The state machine: which states each state may move to (README "Message states").
TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.SCHEDULED, S.QUEUED, S.SENDING, S.CANCELLED, S.SKIPPED, S.PAUSED}),
    S.SCHEDULED: frozenset({S.QUEUED, S.SENDING, S.CANCELLED, S.PAUSED}),
    S.QUEUED: frozenset({S.QUEUED, S.SENDING, S.CANCELLED, S.PAUSED}),
    S.RETRYING: frozenset({S.QUEUED, S.SENDING, S.CANCELLED, S.PAUSED}),
    S.SENDING: frozenset(
        {
            *(S.SENT, S.RETRYING, S.FAILED, S.BROKEN, S.DEBUG),
            *(S.CANCELLED, S.QUEUED, S.SCHEDULED, S.PAUSED),
        }
    ),
    S.PAUSED: frozenset({S.QUEUED, S.SCHEDULED, S.CANCELLED}),  # resume, cancel
    S.FAILED: frozenset({S.QUEUED}),  # retry_failed, resend
    S.BROKEN: frozenset({S.QUEUED}),  # after the template was fixed
    S.CANCELLED: frozenset({S.QUEUED}),  # resend
    S.SENT: frozenset(),
    S.SKIPPED: frozenset(),
    S.DEBUG: frozenset(),
}


class IllegalTransition(ValueError):
    pass


def transition_check(current: str, target: str) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"a {current} message cannot become {target}")


def sources_of(target: str) -> list[str]:
    """The states from which ``target`` may be reached: bulk updates filter on these."""
    return [state for state, targets in TRANSITIONS.items() if target in targets]
