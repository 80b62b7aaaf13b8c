"""/metrics as Prometheus reads it: refused without the token, the backlog counted from the
database, and every dispatch batch's outcomes, failures by error class and send latency
counted in Redis; each batch and each failure logged by id, never by content."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from campaigns.api import notify
from campaigns.models import Message
from campaigns.ops.health import sweep_mark
from campaigns.ops.telemetry import batch_report
from tests import factories
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-for-the-tests-0123456789abcdef"
CONTEXT = {"order_id": "A-1"}


def secret_event(channel):
    return factories.TemplateFactory(
        channel=channel,
        event__key="order-shipped",
        subject="Private subject {{ order_id }}",
        text_body="Private body for {{ recipient.name }}: {{ order_id }}",
    ).event


def scrape(client, token: str = TOKEN) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@override_settings(METRICS_TOKEN="")
def test_without_a_token_configured_the_endpoint_does_not_exist(client):
    for headers in ({}, {"authorization": "Bearer anything"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 404
        assert b"notifier_" not in response.content


@override_settings(METRICS_TOKEN=TOKEN)
def test_a_missing_or_wrong_token_gets_401(client):
    for header in ("", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", f"Bearer {TOKEN}x"):
        response = client.get("/metrics", headers={"authorization": header} if header else {})
        assert response.status_code == 401, header
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"notifier_" not in response.content


@override_settings(METRICS_TOKEN=TOKEN)
def test_the_backlog_and_the_oldest_due_message_come_from_the_database(
    client, committed, django_assert_num_queries
):
    channel = factories.memory_channel()
    secret_event(channel)
    with committed():  # queued, its job enqueued; no worker runs it
        notify("order-shipped", [{"email": "a@x.io"}, {"email": "b@x.io"}], CONTEXT)
    notify(
        "order-shipped",
        {"email": "c@x.io"},
        CONTEXT,
        scheduled_at=timezone.now() + dt.timedelta(hours=1),
    )

    # A scrape's cost does not grow with the table: a fixed set of queries.
    with django_assert_num_queries(7):
        samples = scrape(client)

    assert value(samples, "notifier_messages", channel="memory", state="queued") == 2
    assert value(samples, "notifier_messages", channel="memory", state="scheduled") == 1
    assert value(samples, "notifier_messages", channel="memory", state="retrying") == 0
    assert value(samples, "notifier_messages", channel="memory", state="sent") is None
    assert 0 < value(samples, "notifier_oldest_due_message_age_seconds") < 60
    assert value(samples, "notifier_queue_jobs", state="queued") == 1
    assert value(samples, "notifier_workers", state="idle") == 0
    assert value(samples, "notifier_scrape_error", source="database") == 0
    assert value(samples, "notifier_scrape_error", source="redis") == 0


@override_settings(METRICS_TOKEN=TOKEN)
def test_a_batch_is_counted_by_outcome_and_error_class_and_logged_by_id(
    email_channel, smtp, run_worker, committed, client, caplog
):
    secret_event(email_channel)
    smtp.replies = ["451 4.3.0 try again later", "550 5.1.1 <b@example.com>: no such user"]
    recipients = [{"email": f"{name}@example.com", "name": name} for name in ("a", "b", "c")]
    with committed():
        messages = notify("order-shipped", recipients, CONTEXT).messages
    ids = sorted(m.pk for m in messages)

    with caplog.at_level(logging.INFO, logger="notifier.dispatch"):
        run_worker()

    rows = {m.address: m for m in Message.objects.all()}
    assert [rows[f"{n}@example.com"].status for n in "abc"] == ["retrying", "failed", "sent"]
    transient = rows["a@example.com"].last_error.split(":")[0]
    permanent = rows["b@example.com"].last_error.split(":")[0]
    samples = scrape(client)
    outcome = "notifier_message_outcomes_total"
    assert value(samples, outcome, channel="email", state="sent") == 1
    assert value(samples, outcome, channel="email", state="retrying") == 1
    assert value(samples, outcome, channel="email", state="failed") == 1
    assert value(samples, "notifier_send_attempts_total", channel="email") == 3
    failures = "notifier_send_failures_total"
    assert value(samples, failures, channel="email", error_class=transient, state="retrying") == 1
    assert value(samples, failures, channel="email", error_class=permanent, state="failed") == 1
    assert value(samples, "notifier_send_latency_seconds_count", channel="email") == 1
    assert value(samples, "notifier_send_latency_seconds_bucket", channel="email", le="+Inf") == 1
    assert 0 < value(samples, "notifier_send_latency_seconds_sum", channel="email") < 60

    records = [r for r in caplog.records if r.name == "notifier.dispatch"]
    (batch,) = [r for r in records if getattr(r, "kind", "") == "dispatch.batch"]
    assert batch.message_ids == ids
    assert batch.outcomes == {"failed": 1, "retrying": 1, "sent": 1}
    assert batch.channel == "email"
    assert f"ids {ids[0]}-{ids[-1]}" in batch.getMessage()
    failed = [r for r in records if getattr(r, "kind", "") == "dispatch.failure"]
    assert sorted((r.message_id, r.status, r.error_class) for r in failed) == [
        (rows["a@example.com"].pk, "retrying", transient),
        (rows["b@example.com"].pk, "failed", permanent),
    ]
    said = "\n".join(f"{r.getMessage()} {vars(r)}" for r in records)
    for secret in ("Private", "@example.com", "no such user", "try again later"):
        assert secret not in said


@override_settings(METRICS_TOKEN=TOKEN)
def test_each_send_falls_in_the_first_latency_bucket_that_holds_it(email_channel, client):
    """Latency is counted from the call (or the scheduled time) to the send: 0.05 s is in
    the 0.05 bucket, 0.3 s first in 0.5, a day and a minute only in +Inf."""
    secret_event(email_channel)
    messages = notify("order-shipped", [{"email": f"{n}@x.io"} for n in range(3)], CONTEXT)
    delays = (0.05, 0.3, 86460)
    rows = []
    for message, delay in zip(messages.messages, delays, strict=True):
        message.refresh_from_db()
        rows.append(
            {
                "id": message.pk,
                "status": "sent",
                "attempts": 1,
                "sent_at": message.created_at + dt.timedelta(seconds=delay),
            }
        )
    batch_report(messages=messages.messages, outcomes=rows, started=time.monotonic())
    samples = scrape(client)
    bucket = "notifier_send_latency_seconds_bucket"
    cumulative = {le: value(samples, bucket, channel="email", le=le) for le in LES}
    assert cumulative == {"0.05": 1, "0.1": 1, "0.25": 1, "0.5": 2, "86400.0": 2, "+Inf": 3}
    assert value(samples, "notifier_send_latency_seconds_count", channel="email") == 3
    assert value(samples, "notifier_send_latency_seconds_sum", channel="email") == pytest.approx(
        sum(delays)
    )


LES = ("0.05", "0.1", "0.25", "0.5", "86400.0", "+Inf")


@override_settings(METRICS_TOKEN=TOKEN)
def test_the_grafana_dashboard_asks_only_for_metrics_that_exist(
    email_channel, smtp, run_worker, committed, client
):
    secret_event(email_channel)
    smtp.replies = ["451 4.3.0 try again later"]
    with committed():
        notify("order-shipped", [{"email": "a@example.com"}, {"email": "b@example.com"}], CONTEXT)
    run_worker()
    sweep_mark()
    exposed = {name for name, _ in scrape(client)}
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bnotifier_\w+", target["expr"])
    }
    assert len(queried) >= 10
    assert queried - exposed == set()
