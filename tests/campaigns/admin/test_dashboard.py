"""The admin dashboard: delivery counts from the outbox, the RQ queue, per role."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rq import SimpleWorker

from campaigns.api import notify
from campaigns.models import Message
from campaigns.outbox.queueing import get_queue, queue_stats
from campaigns.outbox.selectors import delivery_stats
from tests import factories


@pytest.fixture
def outbox(db):
    channel = factories.memory_channel()
    factories.TemplateFactory(channel=channel, event__key="order-shipped")
    ids = [
        m.pk
        for m in notify(
            "order-shipped", [{"email": f"p{i}@x.io"} for i in range(6)], {"order_id": "1"}
        ).messages
    ]
    now = timezone.now()
    Message.objects.filter(pk__in=ids[:3]).update(status="sent", sent_at=now)
    Message.objects.filter(pk=ids[3]).update(status="failed")
    old = now - dt.timedelta(days=3)
    Message.objects.filter(pk=ids[4]).update(status="sent", sent_at=old, created_at=old)
    return ids


def test_delivery_stats_count_the_outbox(outbox):
    stats = delivery_stats()
    assert (stats.last_24h["sent"], stats.last_24h["failed"], stats.last_24h["queued"]) == (3, 1, 1)
    assert stats.last_7d["sent"] == 4
    assert stats.by_channel == [{"channel": "Memory outbox", "sent": 4, "failed": 1, "queued": 1}]
    assert stats.sent_per_day[-1] == 3 and stats.sent_per_day[-4] == 1
    assert stats.failed_per_day[-1] == 1
    with CaptureQueriesContext(connection) as queries:
        delivery_stats()
    assert len(queries) == 6  # and one for the counts of purged messages


def test_queue_stats_read_rq(db, redis_connection):
    assert queue_stats().queued == 0
    get_queue().enqueue("campaigns.jobs.sweep")
    stats = queue_stats()
    assert (stats.reachable, stats.queued, stats.workers) == (True, 1, 0)


def test_queue_stats_count_throughput_and_failures_from_rqs_registries(db, redis_connection):
    queue = get_queue()
    for _ in range(3):
        queue.enqueue("campaigns.jobs.dispatch", [])
    queue.enqueue("campaigns.jobs.no_such_job", description="a broken job")
    SimpleWorker([queue], connection=redis_connection).work(burst=True, logging_level="WARNING")
    stats = queue_stats()
    assert (stats.queued, stats.started, stats.failed) == (0, 0, 1)
    assert (stats.finished_recently, stats.failed_recently) == (3, 1)
    assert stats.per_minute == 0.6  # 3 jobs in the last 5 minutes
    (failure,) = stats.last_failures
    assert failure.description == "a broken job" and "no_such_job" in failure.error


def test_superusers_see_the_kpis(outbox, admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert re.search(r'data-kpi="sent-24h">\s*3<', html)
    assert re.search(r'data-kpi="failed-24h">\s*1<', html)
    assert 'data-kpi="queue-depth"' in html
    assert "Messages per channel" in html


def test_marketing_and_support_see_the_queue_read_only_and_no_django_rq_link(
    outbox, client, django_user_model
):
    for role in ("Marketing", "Support"):
        person = django_user_model.objects.create_user(role, f"{role}@x.io", "pw", is_staff=True)
        person.groups.add(Group.objects.get(name=role))
        client.force_login(person)
        html = client.get("/admin/").content.decode()
        assert 'data-kpi="queue-depth"' in html and 'data-kpi="queue-throughput"' in html
        assert 'href="/django-rq/"' not in html
        assert client.get("/django-rq/").status_code == 403
        assert ('data-kpi="sent-24h"' in html) is (role == "Support")  # messages: Support's
