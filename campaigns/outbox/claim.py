"""The claim: a dispatch job takes its rows into ``sending`` under a lease (through
``transitions.messages_claim``), with each row's event and channel from the catalog."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.utils import timezone

from campaigns.conf import app_settings
from campaigns.models import Event, Message
from campaigns.outbox.catalog import catalog
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
    # Events and channels come from the catalog (one object each, shared by the batch); one
    # query for any the catalog does not know yet.
    cat = catalog()
    events = {pk: cat.events_by_id.get(pk) for pk in {m.event_id for m in messages}}
    channels = {pk: cat.channels_by_id.get(pk) for pk in {m.channel_id for m in messages}}
    if None in events.values():
        events.update(Event.objects.in_bulk([pk for pk, e in events.items() if e is None]))
    if None in channels.values():
        channels.update(
            ChannelConfig.objects.in_bulk([pk for pk, c in channels.items() if c is None])
        )
    for message in messages:
        message.event = events[message.event_id]
        message.channel = channels[message.channel_id]
    return messages
