"""campaign: a campaign to ``--recipients`` imported contacts on a null channel, fanned out
and sent by ``--workers`` worker processes, end to end (from "send now" to the last
``sent_at``), against 40 % of the floor with the essential indexes measured in the same round
(measured here when the run has no floor); and the peak memory of each worker.
"""

from __future__ import annotations

import resource
import time

from django.db.models import Max

from campaigns.conf import app_settings
from campaigns.models import CampaignChunk, Message

from . import adapter, floor
from .base import PREFIX, Bench, BenchError, campaign_prepare, null_channel

SCENARIO = "campaign"
KEY = f"{PREFIX}campaign"
#: The issue's target: end to end at 40 % of the floor or more.
FLOOR_SHARE = 0.4
#: Memory per worker at 100,000 recipients (MB).
MEMORY = 150


def run(bench: Bench, *, with_floor: bool = True) -> None:
    options = bench.options
    floor_rate = None
    if with_floor:
        floor_rate, measured_now = floor.essential_rate(bench)
        if measured_now:
            bench.note(f"floor with the essential indexes, measured now: {floor_rate:.0f} msg/s")
    bench.note(
        f"{options.recipients} recipients, {options.workers} workers, chunks of "
        f"{app_settings.CAMPAIGN_CHUNK}, batches of {app_settings.BATCH_SIZE}"
    )
    campaign = campaign_prepare(KEY, options.recipients, null_channel())
    chunks = CampaignChunk.objects.filter(campaign=campaign)
    sent = Message.objects.filter(campaign=campaign, status="sent")
    with bench.workers() as workers:
        started = time.monotonic()
        adapter.campaign_start(campaign)
        deadline = started + options.timeout
        while True:
            workers.check()
            workers.sample()
            if not chunks.filter(status="pending").exists() and sent.count() >= options.recipients:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"not done after {options.timeout:.0f} s: {sent.count()} sent")
            time.sleep(0.5)
    campaign.refresh_from_db()
    # The figures come from the rows' own times, not from this polling loop.
    fanout_end = chunks.aggregate(end=Max("done_at"))["end"]
    last_sent = sent.aggregate(end=Max("sent_at"))["end"]
    written = Message.objects.filter(campaign=campaign).count()
    fanout_seconds = (fanout_end - campaign.started_at).total_seconds()
    total_seconds = (last_sent - campaign.started_at).total_seconds()
    rate = options.recipients / total_seconds
    bench.figure(
        SCENARIO,
        "fanout",
        written / fanout_seconds,
        "rcpt/s",
        "campaign fan-out (message rows written)",
    )
    if floor_rate is None:
        bench.figure(SCENARIO, "end_to_end", rate, "msg/s", "campaign end to end")
    else:
        bench.figure(
            SCENARIO,
            "end_to_end",
            rate,
            "msg/s",
            "campaign end to end (target: 40% of the floor)",
            target=FLOOR_SHARE * floor_rate,
            sense="min",
        )
        bench.note(f"end to end is {rate / floor_rate:.0%} of the floor ({floor_rate:.0f} msg/s)")
    for number, peak in enumerate(workers.peaks.values(), 1):
        bench.note(f"peak memory of worker {number}: {peak:.0f} MB")
    bench.figure(
        SCENARIO,
        "worker_peak_rss",
        max(workers.peaks.values(), default=0.0),
        "MB",
        f"peak memory of the largest worker ({options.recipients} recipients)",
        target=MEMORY,
        sense="max",
    )
    bench.note(
        "peak memory of this command: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
