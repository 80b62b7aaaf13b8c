"""RQ entry points: thin wrappers that take ids and call a service."""

from __future__ import annotations

from campaigns.broadcast.fanout import chunk_fan_out, dry_run_job
from campaigns.outbox.dispatch import message_dispatch
from campaigns.outbox.sweep import sweep as sweep_run
from campaigns.tracking.receipts import push_receipts_poll


def dispatch(message_ids: list[int]) -> dict[str, int]:
    return message_dispatch(message_ids=message_ids).as_dict()


def sweep() -> dict[str, int]:
    return sweep_run().as_dict()


def campaign_chunk(chunk_id: int) -> dict:
    return chunk_fan_out(chunk_id)


def push_receipts() -> dict[str, int]:
    return push_receipts_poll().as_dict()


def campaign_dry_run(campaign_id: int) -> dict:
    return dry_run_job(campaign_id)
