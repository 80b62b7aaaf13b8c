"""The Prometheus metrics (``/metrics``), collected when scraped.

Two sources, both global to the site, so every web process answers the same and one scrape
target is enough (scrape two and take ``max without (instance)``):

- **the database**, for what is waiting now: unfinished messages by channel and state, and
  the age of the oldest due message. Only unfinished rows are counted (finished ones grow
  without bound), through the partial indexes the sweep uses (``message_waiting_due_idx``,
  ``message_lease_idx``) and ``message_status_idx``, under a 5 s statement timeout: a scrape
  costs in proportion to the backlog, not to the table;
- **Redis**: counters every dispatch batch adds to (``ops.telemetry``: outcomes by channel
  and state, attempts, failures by error class, the send-latency histogram), the RQ queue's
  jobs, the live workers and cron schedulers, and the age of the last sweep.

A source that cannot be read is reported by ``notifier_scrape_error{source}`` = 1 and its
metrics are left out; the scrape itself still answers.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from functools import cache

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from rq import Queue

from campaigns.conf import app_settings
from campaigns.domain.states import WAITING, MessageStatus
from campaigns.models import Message
from campaigns.ops.health import probe_redis, schedulers_alive, sweep_age, workers_alive
from campaigns.ops.telemetry import LATENCY_BUCKETS, SEP, counters_read
from channels.models import ChannelConfig

logger = logging.getLogger("notifier.metrics")

#: States a message leaves again: the backlog, counted at every scrape.
UNFINISHED = (*WAITING, MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.PAUSED)
STATEMENT_TIMEOUT_MS = 5000


def _database_metrics() -> Iterator[Metric]:
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
        keys = dict(ChannelConfig.objects.values_list("id", "key"))
        rows = (
            Message.objects.filter(status__in=UNFINISHED)
            .values_list("channel_id", "status")
            .annotate(n=Count("id"))
            .order_by()
        )
        counts = {
            (keys.get(channel_id, str(channel_id)), status): n for channel_id, status, n in rows
        }
        waiting_due = (
            Message.objects.filter(status__in=WAITING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("next_attempt_at", flat=True)
            .first()
        )
        queued = (  # the row queued longest ago holds the oldest queue lease
            Message.objects.filter(status=MessageStatus.QUEUED)
            .order_by("lease_until")
            .values_list("next_attempt_at", "created_at")
            .first()
        )
    messages = GaugeMetricFamily(
        "notifier_messages",
        "Messages not yet processed, by channel and state (from the database).",
        labels=["channel", "state"],
    )
    for channel in sorted(keys.values()):
        for state in UNFINISHED:  # every series always present, 0 when empty
            messages.add_metric([channel, state], counts.pop((channel, state), 0))
    for (channel, state), n in sorted(counts.items()):  # a channel deleted meanwhile
        messages.add_metric([channel, state], n)
    yield messages
    due_times = [t for t in (waiting_due, queued and (queued[0] or queued[1])) if t]
    oldest = min(due_times, default=None)
    yield GaugeMetricFamily(
        "notifier_oldest_due_message_age_seconds",
        "How long the oldest message that is due (waiting past its time, or queued) has "
        "waited; 0 when none is due.",
        value=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
    )


def _redis_metrics() -> Iterator[Metric]:
    client = probe_redis()
    queues = [
        Queue(name, connection=client) for name in (app_settings.QUEUE, app_settings.BULK_QUEUE)
    ]
    jobs = GaugeMetricFamily(
        "notifier_queue_jobs",
        "Jobs of the notifier's RQ queues (the transactional and the bulk lane): waiting, "
        "running, failed.",
        labels=["state"],
    )
    jobs.add_metric(["queued"], sum(queue.count for queue in queues))
    jobs.add_metric(["started"], sum(queue.started_job_registry.count for queue in queues))
    jobs.add_metric(["failed"], sum(queue.failed_job_registry.count for queue in queues))
    yield jobs
    workers = GaugeMetricFamily(
        "notifier_workers", "Live RQ workers on the notifier queue.", labels=["state"]
    )
    by_state: dict[str, int] = defaultdict(int)
    for worker in workers_alive(client):
        by_state[worker["state"] or "unknown"] += 1
    for state in ("busy", "idle"):
        by_state.setdefault(state, 0)
    for state, n in sorted(by_state.items()):
        workers.add_metric([state], n)
    yield workers
    yield GaugeMetricFamily(
        "notifier_cron_schedulers",
        "Live RQ cron schedulers (notifier_cron).",
        value=len(schedulers_alive(client)),
    )
    age = sweep_age(client)
    if age is not None:
        yield GaugeMetricFamily(
            "notifier_sweep_age_seconds", "Seconds since the last sweep pass ended.", value=age
        )
    yield from _counters(counters_read(client))


def _counters(values: dict[str, float]) -> Iterator[Metric]:
    outcomes = CounterMetricFamily(
        "notifier_message_outcomes",
        "Messages a dispatch batch ended in each state (sent, retrying, failed, broken, "
        "cancelled, scheduled, paused, debug), by channel.",
        labels=["channel", "state"],
    )
    attempts = CounterMetricFamily(
        "notifier_send_attempts",
        "Tries at delivering a message (sent, or failed with an error), by channel.",
        labels=["channel"],
    )
    failures = CounterMetricFamily(
        "notifier_send_failures",
        "Failed tries by channel, error class (the backend's exception: TransientError, "
        "PermanentError, AddressRejected …; broken: could not be built) and the state the "
        "message went to.",
        labels=["channel", "error_class", "state"],
    )
    latency = HistogramMetricFamily(
        "notifier_send_latency_seconds",
        "From notify() (or the scheduled time, when later) to sent, by channel.",
        labels=["channel"],
    )
    buckets: dict[str, dict[str, float]] = defaultdict(dict)
    sums: dict[str, float] = {}
    for name, value in sorted(values.items()):
        kind, _, rest = name.partition(SEP)
        if kind == "outcome":
            channel, _, state = rest.rpartition(SEP)
            outcomes.add_metric([channel, state], value)
        elif kind == "attempt":
            attempts.add_metric([rest], value)
        elif kind == "failure":
            channel, error_class, state = rest.split(SEP)
            failures.add_metric([channel, error_class, state], value)
        elif kind == "latency":
            channel, _, bound = rest.rpartition(SEP)
            buckets[channel][bound] = value
        elif kind == "latency_sum":
            sums[rest] = value
    for channel in sorted(buckets):
        cumulative, pairs = 0.0, []
        for bound in (*LATENCY_BUCKETS, "+Inf"):
            cumulative += buckets[channel].get(str(bound), 0.0)
            pairs.append((floatToGoString(bound), cumulative))
        latency.add_metric([channel], pairs, sum_value=sums.get(channel, 0.0))
    yield from (outcomes, attempts, failures, latency)


class NotifierCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily(
            "notifier_scrape_error",
            "1 when this scrape could not read a source (its metrics are left out).",
            labels=["source"],
        )
        for source, metrics in (("database", _database_metrics), ("redis", _redis_metrics)):
            try:
                collected = list(metrics())
            except Exception as error:  # one source down must not hide the other's metrics
                logger.warning("metrics: could not read the %s: %s", source, error)
                errors.add_metric([source], 1)
                continue
            errors.add_metric([source], 0)
            yield from collected
        yield errors


@cache
def registry() -> CollectorRegistry:
    registry_ = CollectorRegistry(auto_describe=False)
    registry_.register(NotifierCollector())
    return registry_
