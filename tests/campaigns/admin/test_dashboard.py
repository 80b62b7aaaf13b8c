"""The admin dashboard: delivery counts from the outbox, the RQ queue, per role."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

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
    assert len(queries) == 5


def test_queue_stats_read_rq(db, redis_connection):
    assert queue_stats().queued == 0
    get_queue().enqueue("campaigns.jobs.sweep")
    stats = queue_stats()
    assert (stats.reachable, stats.queued, stats.workers) == (True, 1, 0)


def test_superusers_see_the_kpis(outbox, admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert re.search(r'data-kpi="sent-24h">\s*3<', html)
    assert re.search(r'data-kpi="failed-24h">\s*1<', html)
    assert 'data-kpi="queue-depth"' in html
    assert "Messages per channel" in html


def test_marketing_sees_no_delivery_figures(outbox, client, django_user_model):
    mia = django_user_model.objects.create_user("mia", "mia@x.io", "pw", is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    client.force_login(mia)
    html = client.get("/admin/").content.decode()
    assert "data-kpi" not in html
