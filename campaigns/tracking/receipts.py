"""Expo push receipts, polled (RQ's cron scheduler every ``PUSH_RECEIPT_INTERVAL`` seconds, and
``manage.py poll_push_receipts``).

An Expo ticket only says Expo took the push; its receipt says whether Apple or Google did.
Messages of channels whose backend ``polls_receipts``, sent more than ``PUSH_RECEIPT_DELAY``
seconds ago and whose ``delivery_status`` is still empty, are asked about, up to 1000 per
request; each receipt becomes a ``DeliveryEvent`` (``channels.webhooks.expo``) applied by
``tracking.delivery``. A message whose receipt is not there yet keeps its empty
``delivery_status`` and is asked for again next time; after ``PUSH_RECEIPT_MAX_AGE`` seconds it
becomes ``unknown``. The empty ``delivery_status`` is the "not read yet" mark, so no column is
needed. Rows another poll holds are skipped (``SKIP LOCKED``), so two polls at once ask Expo
once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from campaigns.conf import app_settings
from campaigns.models import Message, MessageStatus
from campaigns.tracking.delivery import delivery_events_apply
from channels.backends.base import BaseBackend, DeliveryError
from channels.backends.expo import MAX_RECEIPTS
from channels.models import ChannelConfig
from channels.registry import UnknownBackend
from channels.webhooks.base import DeliveryEvent
from channels.webhooks.expo import receipt_event

logger = logging.getLogger("notifier.tracking")


@dataclass(slots=True)
class ReceiptSummary:
    polled: int = 0  # messages asked about
    delivered: int = 0
    failed: int = 0  # error receipts
    deactivated: int = 0  # push tokens Expo called DeviceNotRegistered
    pending: int = 0  # no receipt yet: asked again next time
    unknown: int = 0  # no receipt after PUSH_RECEIPT_MAX_AGE
    errors: int = 0  # requests Expo refused or that failed

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def _polled_channels() -> list[ChannelConfig]:
    found = []
    for channel in ChannelConfig.objects.order_by("pk"):
        try:
            if channel.backend_class.polls_receipts:
                found.append(channel)
        except UnknownBackend:  # not a backend of this site: nothing to poll
            logger.debug("channel %s: backend %s not loadable", channel.key, channel.backend)
    return found


def push_receipts_poll(*, now: dt.datetime | None = None) -> ReceiptSummary:
    """One pass over every channel that polls receipts (see the module's docstring)."""
    now = now or timezone.now()
    summary = ReceiptSummary()
    for channel in _polled_channels():
        try:
            backend = channel.get_backend()
        except Exception:
            logger.exception("channel %s: cannot poll push receipts", channel.key)
            summary.errors += 1
            continue
        with backend:
            _channel_receipts_poll(channel=channel, backend=backend, now=now, summary=summary)
    return summary


def _channel_receipts_poll(
    *, channel: ChannelConfig, backend: BaseBackend, now: dt.datetime, summary: ReceiptSummary
) -> None:
    due = now - dt.timedelta(seconds=app_settings.PUSH_RECEIPT_DELAY)
    give_up = now - dt.timedelta(seconds=app_settings.PUSH_RECEIPT_MAX_AGE)
    last_id = 0
    while True:
        with transaction.atomic():
            rows = list(
                Message.objects.filter(
                    channel=channel,
                    status=MessageStatus.SENT,
                    delivery_status="",
                    sent_at__lte=due,
                    id__gt=last_id,
                )
                .exclude(provider_id="")
                .select_for_update(skip_locked=True)
                .order_by("id")
                .values("id", "provider_id", "sent_at")[:MAX_RECEIPTS]
            )
            if not rows:
                return
            last_id = rows[-1]["id"]
            summary.polled += len(rows)
            try:
                receipts = backend.receipts([row["provider_id"] for row in rows])
            except DeliveryError as error:
                logger.warning("channel %s: push receipts not read: %s", channel.key, error)
                summary.errors += 1
                return
            events = []
            for row in rows:
                receipt = receipts.get(row["provider_id"])
                if receipt is not None:
                    events.append(
                        receipt_event(
                            channel_key=channel.key, provider_id=row["provider_id"], receipt=receipt
                        )
                    )
                elif row["sent_at"] < give_up:
                    events.append(
                        DeliveryEvent(
                            channel_key=channel.key,
                            provider_id=row["provider_id"],
                            status="unknown",
                            reason="no Expo receipt within PUSH_RECEIPT_MAX_AGE",
                            at=now,
                            esp="expo",
                        )
                    )
                else:
                    summary.pending += 1
            applied = delivery_events_apply(events)
            counts = Counter(event.status for event in events)
            summary.delivered += counts["delivered"]
            summary.failed += counts["failed"]
            summary.unknown += counts["unknown"]
            summary.deactivated += applied.deactivated
        if len(rows) < MAX_RECEIPTS:
            return
