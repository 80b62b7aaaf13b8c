"""priority: a transactional message (a password reset) during a campaign.

A campaign to ``--recipients`` contacts on a null channel is started with ``--workers``
workers; while it sends, a mandatory transactional event is triggered every 0.2 s (a
one-recipient ``notify()`` committed in the caller's transaction), and the time from each
commit to its ``sent_at`` is taken: p50 and p99, against the issue's 1 s (p99).
"""

from __future__ import annotations

import contextlib
import time

from django.db.models import Max

from campaigns.api import notify
from campaigns.models import Message

from . import adapter
from .base import (
    PREFIX,
    Bench,
    BenchError,
    campaign_prepare,
    committed,
    event_with_template,
    null_channel,
    percentile,
    wait_for,
)

SCENARIO = "priority"
CAMPAIGN = f"{PREFIX}priority-campaign"
RESET = f"{PREFIX}reset"
RESET_TEMPLATE = {
    "subject": "Reset your password",
    "text_body": "Hello {{ recipient.name }}, reset your password here: {{ reset_url }}",
    "html_body": '<p>Hello {{ recipient.name }},</p><p><a href="{{ reset_url }}">Reset your '
    "password</a>.</p>",
}
#: How long the transactional messages may take after the campaign is done before the
#: missing ones count as not sent.
GRACE = 120.0


def run(bench: Bench) -> None:
    options = bench.options
    channel = null_channel()
    campaign = campaign_prepare(CAMPAIGN, options.recipients, channel)
    event_with_template(
        RESET,
        channel,
        variables=[{"name": "reset_url", "label": "Reset link", "sample": "https://x.io/r"}],
        mandatory=True,
        **RESET_TEMPLATE,
    )
    campaign_messages = Message.objects.filter(campaign=campaign)
    with bench.workers() as workers:
        adapter.campaign_start(campaign)
        begun = time.monotonic()
        deadline = begun + options.timeout
        triggered: list[tuple[int, float]] = []
        next_at = time.monotonic()
        checked_at = 0.0
        while True:
            now = time.monotonic()
            if now >= next_at:
                number = len(triggered)
                result, at = committed(
                    lambda n=number: notify(
                        RESET,
                        {"email": f"r{n}@bench.example", "name": f"User {n}"},
                        {"reset_url": f"https://shop.example.com/reset/{n}"},
                    )
                )
                triggered.append((result.messages[0].pk, at))
                next_at += options.trigger_interval
            if now - checked_at >= 1.0:
                checked_at = now
                workers.check()
                workers.sample()
                if campaign_messages.filter(status="sent").count() >= options.recipients:
                    break
                if now > deadline:
                    raise BenchError(f"the campaign was not sent after {options.timeout:.0f} s")
            time.sleep(max(0.0, min(next_at, checked_at + 1.0) - time.monotonic()))
        campaign_seconds = time.monotonic() - begun
        ids = [pk for pk, _ in triggered]
        resets = Message.objects.filter(pk__in=ids)
        # The missing ones count as sent after the grace period (below).
        with contextlib.suppress(BenchError):
            wait_for(
                lambda: resets.filter(status="sent").count() == len(ids),
                timeout=GRACE,
                what="the transactional messages",
                interval=0.2,
                check=workers.check,
            )
        sent_at = dict(resets.filter(status="sent").values_list("pk", "sent_at"))
        last_sent = campaign_messages.aggregate(end=Max("sent_at"))["end"]
    missing = [pk for pk in ids if pk not in sent_at]
    latencies = [
        (sent_at[pk].timestamp() - at) * 1000
        if pk in sent_at
        else (campaign_seconds + GRACE) * 1000
        for pk, at in triggered
    ]
    if missing:
        bench.note(
            f"{len(missing)} of {len(ids)} transactional messages were not sent {GRACE:.0f} s "
            "after the campaign; counted with that wait"
        )
    bench.note(f"{len(ids)} transactional messages during a {campaign_seconds:.1f} s campaign")
    bench.figure(
        SCENARIO,
        "transactional_p50",
        percentile(latencies, 0.5),
        "ms",
        "transactional during a campaign, commit to sent (p50)",
    )
    bench.figure(
        SCENARIO,
        "transactional_p99",
        percentile(latencies, 0.99),
        "ms",
        "transactional during a campaign, commit to sent (p99)",
        target=1000,
        sense="max",
    )
    campaign.refresh_from_db()
    bench.figure(
        SCENARIO,
        "campaign_throughput",
        options.recipients / (last_sent - campaign.started_at).total_seconds(),
        "msg/s",
        "the campaign meanwhile, end to end",
    )
