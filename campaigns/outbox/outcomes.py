"""What a send attempt comes to: the row of results a dispatch writes back for each message
(sent, retrying with backoff, failed, or put back without counting an attempt), and the
attempt log. The rows are written by ``transitions.outcomes_record``."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from django.utils import timezone

from campaigns.conf import app_settings
from campaigns.models import Message, MessageAttempt, MessageStatus
from campaigns.outbox.bulk import rows_insert
from campaigns.outbox.decisions import EXPIRED
from campaigns.outbox.transitions import outcomes_record
from channels.backends.base import DeliveryError, SendResult, TransientError
from channels.models import ChannelConfig

#: The fields a dispatch writes back, per message, in one statement.
RESULT_FIELDS = (
    "status",
    "status_reason",
    "sent_at",
    "next_attempt_at",
    "lease_until",
    "last_error",
    "provider_id",
    "subject",
    "attempts",
)
#: The rendered bodies: kept on the row only where the row is what the recipient reads (the
#: in-app inbox). Elsewhere a message is rendered again from its template to be shown, and
#: the send path does not write kilobytes of HTML per message.
BODY_FIELDS = ("text", "html")


def retry_delay(*, attempts: int, channel: ChannelConfig, retry_after: float | None) -> float:
    """Exponential backoff with jitter; never sooner than the provider's Retry-After."""
    base = channel.retry_delay if channel.retry_delay is not None else app_settings.RETRY_DELAY
    factor = channel.retry_backoff or app_settings.RETRY_BACKOFF
    delay = base * factor ** max(attempts - 1, 0)
    jitter = app_settings.RETRY_JITTER
    delay *= 1 + random.uniform(-jitter, jitter)  # noqa: S311 - jitter, not security
    return max(delay, retry_after or 0.0)


#: Outcomes that put a message back to wait: past its expiry, it is cancelled instead.
_WAITS = (MessageStatus.RETRYING, MessageStatus.SCHEDULED)
_EXPIRED_OUTCOME = {
    "status": MessageStatus.CANCELLED,
    "status_reason": EXPIRED,
    "next_attempt_at": None,
}


def outcome(message: Message, **changes: Any) -> dict[str, Any]:
    """The result row of ``message``: its current fields with ``changes``. A row that would
    wait (a retry, a window, a rate limit) until after the message expires is cancelled as
    expired instead: it would only go out late."""
    if (
        changes.get("status") in _WAITS
        and message.expires_at is not None
        and changes.get("next_attempt_at") is not None
        and changes["next_attempt_at"] >= message.expires_at
    ):
        changes = {**changes, **_EXPIRED_OUTCOME}
    row = {name: getattr(message, name) for name in RESULT_FIELDS}
    if message.channel.backend_class.stores_messages:
        row.update((name, getattr(message, name)) for name in BODY_FIELDS)
    row.update(changes, id=message.pk, attempts=message.attempts, lease_until=None)
    for name, value in row.items():
        setattr(message, name, value)
    return row


def outcome_for(message: Message, result: SendResult, now: dt.datetime) -> dict[str, Any]:
    if result.ok:
        return outcome(
            message,
            status=MessageStatus.SENT,
            sent_at=now,
            next_attempt_at=None,
            last_error="",
            provider_id=result.provider_id[:255],
        )
    error: DeliveryError = result.error
    text = f"{type(error).__name__}: {error}"[:4000]
    if isinstance(error, TransientError) and message.attempts < message.max_attempts:
        delay = retry_delay(
            attempts=message.attempts, channel=message.channel, retry_after=error.retry_after
        )
        return outcome(
            message,
            status=MessageStatus.RETRYING,
            last_error=text,
            next_attempt_at=now + dt.timedelta(seconds=delay),
        )
    if isinstance(error, TransientError):
        text = f"{text} (gave up after {message.attempts} attempts)"
    return outcome(message, status=MessageStatus.FAILED, last_error=text, next_attempt_at=None)


#: Outcomes that were a try at delivery (a message put back to wait for its window was not).
ATTEMPTED = {
    MessageStatus.SENT,
    MessageStatus.RETRYING,
    MessageStatus.FAILED,
    MessageStatus.BROKEN,
    MessageStatus.DEBUG,
    MessageStatus.CANCELLED,
}


def outcomes_write(outcomes: list[dict[str, Any]]) -> None:
    """Record a batch's results: one statement, and one more when some rows keep their
    bodies (inbox messages)."""
    with_body = [row for row in outcomes if "text" in row]
    without = [row for row in outcomes if "text" not in row]
    if without:
        outcomes_record(without, RESULT_FIELDS)
    if with_body:
        outcomes_record(with_body, (*RESULT_FIELDS, *BODY_FIELDS))


def attempts_logged(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outcomes the delivery log keeps a row of: every try but a first one that was sent
    (the message itself says that: sent, attempt 1, when, the provider's id)."""
    return [
        row
        for row in outcomes
        if row["status"] in ATTEMPTED
        and not (row["status"] == MessageStatus.SENT and row["attempts"] == 1)
    ]


def attempts_record(outcomes: list[dict[str, Any]]) -> None:
    """One row per try in the delivery log, for the whole batch in one statement."""
    now = timezone.now()
    rows_insert(
        MessageAttempt,
        [
            MessageAttempt(
                message_id=row["id"],
                number=row["attempts"],
                status=row["status"],
                error=row["last_error"] or row.get("status_reason", ""),
                provider_id=row["provider_id"] or "",
                at=row.get("sent_at") or now,
            )
            for row in outcomes
            if row["status"] in ATTEMPTED
        ],
    )


def held_outcome(message: Message, state: str) -> dict[str, Any]:
    """A message its campaign's pause or cancel stopped before it was sent: not an attempt."""
    if state == "paused":
        row = outcome(message, status=MessageStatus.PAUSED, next_attempt_at=timezone.now())
    else:
        row = outcome(
            message,
            status=MessageStatus.CANCELLED,
            status_reason="campaign cancelled",
            next_attempt_at=None,
        )
    row["attempts"] = message.attempts = message.attempts - 1
    return row
