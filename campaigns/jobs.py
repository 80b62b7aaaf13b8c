"""RQ entry points: thin wrappers that take ids and call a service. ``sweep_pass`` is the one
composition of two layers: the outbox's sweep, then the campaigns' (which sits above it)."""

from __future__ import annotations

import datetime as dt

from campaigns.broadcast.dry_run import dry_run_job
from campaigns.broadcast.fanout import campaigns_tick, chunk_fan_out
from campaigns.integrations.webhooks import deliveries_due, deliveries_send
from campaigns.ops.health import sweep_mark
from campaigns.outbox.dispatch import message_dispatch, messages_drain
from campaigns.outbox.retention import retention_run
from campaigns.outbox.sweep import SweepSummary
from campaigns.outbox.sweep import sweep as outbox_sweep
from campaigns.tracking.receipts import push_receipts_poll


def dispatch(message_ids: list[int]) -> dict[str, int]:
    return message_dispatch(message_ids=message_ids).as_dict()


def drain(lane: str, slot: int = 1) -> dict[str, int]:
    return messages_drain(lane=lane, slot=slot).as_dict()


def sweep_pass(*, now: dt.datetime | None = None) -> SweepSummary:
    """One pass of the sweep: due and lost messages, then campaigns to launch, lost chunks
    and finished campaigns (RQ's cron job and ``process_notifications``)."""
    summary = outbox_sweep(now=now)
    summary.campaigns = sum(campaigns_tick(now=now).values())
    deliveries_due(now=now)  # status webhooks to retry, or lost with a dead worker
    sweep_mark()  # what /readyz reads: "the sweep ran recently"
    return summary


def sweep() -> dict[str, int]:
    return sweep_pass().as_dict()


def campaign_chunk(chunk_id: int) -> dict:
    return chunk_fan_out(chunk_id)


def push_receipts() -> dict[str, int]:
    return push_receipts_poll().as_dict()


def campaign_dry_run(campaign_id: int) -> dict:
    return dry_run_job(campaign_id)


def retention() -> dict:
    """Old finished messages, attempts and decisions (README "Retention")."""
    return retention_run().as_dict()


def webhooks_deliver(delivery_ids: list[int]) -> dict[str, int]:
    return deliveries_send(ids=delivery_ids)
