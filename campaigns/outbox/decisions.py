"""The decision trail: why a trigger wrote no message for a recipient on a channel.

``notify()`` and a campaign's chunk each record their skips with one ``decisions_record``
call in the transaction that writes their messages: one ``COPY`` when anyone was skipped,
nothing at all otherwise, so the hot path without skips pays nothing. The rows are kept
``DECISION_RETENTION_DAYS`` days; ``decisions_purge`` (an hourly cron job) deletes older ones
in batches, oldest first, so a purge never holds a long lock.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from typing import Any

from django.utils import timezone

from campaigns.conf import app_settings
from campaigns.models import Campaign, Decision, Event
from campaigns.outbox.bulk import rows_insert
from campaigns.outbox.plan import Skipped

_CALL_LENGTH = Decision._meta.get_field("call").max_length
_ADDRESS_LENGTH = Decision._meta.get_field("address").max_length
#: Frames of these modules are the notifier's own: the call is where the first other one is.
_OWN_MODULES = ("campaigns.outbox.", "campaigns.api", "campaigns.broadcast.")
PURGE_BATCH = 5000
#: The reason of a message cancelled unsent because its ``expires_at`` passed.
EXPIRED = "expired"


def recipient_address(recipient: dict[str, Any]) -> str:
    """The address a person is found by on the support timeline: their email, else their
    phone, else "" (a user is found by their user id)."""
    for key in ("email", "phone"):
        value = recipient.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()[:_ADDRESS_LENGTH]
    return ""


def call_site(depth: int = 1) -> str:
    """``module:function:line`` of the first frame outside the notifier's send path: which
    code of the host site called ``notify()``. Walks a few frames; no source is read."""
    frame = sys._getframe(depth)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(_OWN_MODULES):
            return f"{module}:{frame.f_code.co_name}:{frame.f_lineno}"[:_CALL_LENGTH]
        frame = frame.f_back
    return ""


def decisions_record(
    skipped: Sequence[Skipped],
    *,
    event: Event,
    campaign: Campaign | None = None,
    call: str = "",
    now: dt.datetime | None = None,
) -> int:
    """Record why each skipped recipient got nothing on its channel, in the current
    transaction (one COPY; no query when nothing was skipped). ``call``: who asked (default:
    the campaign, or the host's code that called ``notify()``). Returns the rows written."""
    if not skipped:
        return 0
    now = now or timezone.now()
    if not call:
        call = f"campaign {campaign.pk}: {campaign.name}" if campaign else call_site(2)
    rows = [
        Decision(
            created_at=now,
            event_id=event.pk,
            channel=skip.channel,
            reason=skip.reason[:32],
            user_id=skip.recipient.get("user_id"),
            address=recipient_address(skip.recipient),
            campaign_id=campaign.pk if campaign is not None else None,
            call=call[:_CALL_LENGTH],
        )
        for skip in skipped
    ]
    rows_insert(Decision, rows, ids=False)  # nobody reads them back: the COPY alone
    return len(rows)


def expired_decisions_record(messages: Sequence[Any], *, now: dt.datetime | None = None) -> int:
    """Record that these messages (Message rows, or dicts of ``id``, ``event_id``,
    ``channel_key``, ``recipient`` and ``campaign_id``) were cancelled unsent as expired, in
    the current transaction: one COPY, no query when there are none. Returns the rows
    written."""
    if not messages:
        return 0
    now = now or timezone.now()
    rows = []
    for message in messages:
        if not isinstance(message, dict):
            message = {
                "id": message.pk,
                "event_id": message.event_id,
                "channel_key": message.channel.key,
                "recipient": message.recipient,
                "campaign_id": message.campaign_id,
            }
        recipient = message["recipient"] or {}
        rows.append(
            Decision(
                created_at=now,
                event_id=message["event_id"],
                channel=message["channel_key"],
                reason=EXPIRED,
                user_id=recipient.get("user_id"),
                address=recipient_address(recipient),
                campaign_id=message["campaign_id"],
                call=f"message {message['id']} expired unsent",
            )
        )
    rows_insert(Decision, rows, ids=False)
    return len(rows)


def decisions_purge(*, now: dt.datetime | None = None, batch: int = PURGE_BATCH) -> int:
    """Delete decisions older than ``DECISION_RETENTION_DAYS``, ``batch`` rows per statement
    (oldest first). Returns how many were deleted."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=app_settings.DECISION_RETENTION_DAYS)
    deleted = 0
    while True:
        ids = list(
            Decision.objects.filter(created_at__lt=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return deleted
        deleted += Decision.objects.filter(pk__in=ids).delete()[0]
