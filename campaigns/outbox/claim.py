"""The claim: a dispatch job takes its rows into ``sending`` under a lease (through
``transitions.messages_claim``), with each row's event and channel loaded once per batch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.utils import timezone

from campaigns.conf import app_settings
from campaigns.models import Event, Message
from campaigns.outbox.transitions import messages_claim as rows_claim
from channels.models import ChannelConfig


def messages_claim(*, message_ids: Iterable[int], now: dt.datetime | None = None) -> list[Message]:
    """Take the rows that are still claimable into ``sending`` under a lease; rows another
    worker holds are skipped, so two jobs carrying the same ids never both send a message."""
    now = now or timezone.now()
    ids = sorted({int(i) for i in message_ids})
    if not ids:
        return []
    lease_until = now + dt.timedelta(seconds=app_settings.LEASE_SECONDS)
    messages = rows_claim(ids, now=now, lease_until=lease_until)
    if not messages:
        return []
    # A batch has one channel and few events: load each once, not a copy per row.
    events = Event.objects.in_bulk({m.event_id for m in messages})
    channels = ChannelConfig.objects.in_bulk({m.channel_id for m in messages})
    for message in messages:
        message.event = events[message.event_id]
        message.channel = channels[message.channel_id]
    return messages
