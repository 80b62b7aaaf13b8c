"""Retention: old finished messages, attempts and decisions are deleted (or stripped of their
content) in short batches that skip locked rows; active rows and unread inbox items stay; the
dashboard's and the campaign report's totals stay what they were; a purge never holds up a
worker."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rq.cron import CronScheduler

from campaigns import jobs
from campaigns.api import notify
from campaigns.broadcast.report import campaign_message_counts, campaign_report
from campaigns.models import (
    Audience,
    Campaign,
    Decision,
    Message,
    MessageAttempt,
    MessageDayCount,
)
from campaigns.outbox import retention
from campaigns.outbox.queueing import BULK, get_queue
from campaigns.outbox.retention import retention_preview, retention_run
from campaigns.outbox.selectors import delivery_stats
from channels.backends import locmem
from channels.models import ChannelConfig
from tests import factories

CONTEXT = {"order_id": "A-1"}


def days_ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


@pytest.fixture
def channel(db):
    channel = factories.memory_channel("mail")
    factories.TemplateFactory(channel=channel, event__key="order-shipped")
    return channel


def written(n: int, **fields) -> list[int]:
    """``n`` messages from notify(), then set to ``fields`` (a test's shortcut past the send)."""
    start = Message.objects.count()
    ids = [
        m.pk
        for m in notify(
            "order-shipped", [{"email": f"p{start + i}@x.io"} for i in range(n)], CONTEXT
        ).messages
    ]
    Message.objects.filter(pk__in=ids).update(**fields)
    return ids


def test_old_finished_messages_go_and_recent_or_active_ones_stay(channel, settings):
    settings.NOTIFIER = {**settings.NOTIFIER, "MESSAGE_RETENTION_DAYS": 90}
    old = days_ago(91)
    finished = {
        status: written(1, status=status, created_at=old, updated_at=old, sent_at=old)[0]
        for status in ("sent", "failed", "cancelled", "skipped", "broken", "debug")
    }
    active = {
        status: written(1, status=status, created_at=old)[0]
        for status in ("pending", "queued", "sending", "scheduled", "retrying", "paused")
    }
    recent = written(1, status="sent", created_at=days_ago(89), sent_at=days_ago(89))[0]
    MessageAttempt.objects.create(
        message_id=finished["failed"], number=1, status="retrying", error="421", at=old
    )

    summary = retention_run()

    assert summary.messages == 6
    left = set(Message.objects.values_list("pk", flat=True))
    assert left == {*active.values(), recent}
    assert not MessageAttempt.objects.exists()  # went with its message
    assert sum(MessageDayCount.objects.values_list("count", flat=True)) == 6


def test_the_cutoff_is_the_start_of_a_day(channel, settings):
    """A day is purged whole: the dashboard adds whole days of counts to its windows."""
    settings.NOTIFIER = {**settings.NOTIFIER, "MESSAGE_RETENTION_DAYS": 2}
    now = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    start_of_day = now.replace(hour=0) - dt.timedelta(days=2)
    before = written(1, status="sent", created_at=start_of_day - dt.timedelta(seconds=1))
    after = written(1, status="sent", created_at=start_of_day + dt.timedelta(seconds=1))
    assert retention_run(now=now).messages == 1
    assert list(Message.objects.values_list("pk", flat=True)) == after
    assert not Message.objects.filter(pk__in=before).exists()


def test_unread_inbox_items_stay_until_read_or_their_own_age(db, settings, django_user_model):
    settings.NOTIFIER = {**settings.NOTIFIER, "MESSAGE_RETENTION_DAYS": 30}
    inbox, _ = ChannelConfig.objects.update_or_create(
        key="inbox",
        defaults={"name": "In-app inbox", "backend": "channels.backends.inbox.InboxBackend"},
    )
    factories.TemplateFactory(channel=inbox, event__key="order-shipped")
    alice = django_user_model.objects.create_user("alice", "alice@x.io")
    ids = [m.pk for m in notify("order-shipped", [alice] * 1, CONTEXT).messages]
    ids += [m.pk for m in notify("order-shipped", alice, {"order_id": "2"}).messages]
    ids += [m.pk for m in notify("order-shipped", alice, {"order_id": "3"}).messages]
    unread, read, archived = ids
    old = days_ago(40)
    Message.objects.filter(pk__in=ids).update(status="sent", created_at=old, sent_at=old)
    Message.objects.filter(pk=read).update(consumed_at=old)
    Message.objects.filter(pk=archived).update(archived_at=old)

    preview = retention_preview()
    assert (preview.messages, preview.inbox_kept) == (2, 1)
    assert retention_run().messages == 2
    assert list(Message.objects.values_list("pk", flat=True)) == [unread]

    settings.NOTIFIER = {**settings.NOTIFIER, "INBOX_RETENTION_DAYS": 5}
    assert retention_run().messages == 1  # 40 days > 30 + 5


def test_attempts_and_decisions_have_their_own_ages(channel, settings):
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "MESSAGE_RETENTION_DAYS": 90,
        "ATTEMPT_RETENTION_DAYS": 30,
        "DECISION_RETENTION_DAYS": 10,
    }
    sent, retrying = written(2, status="sent", created_at=days_ago(40))
    Message.objects.filter(pk=retrying).update(status="retrying")
    for message_id in (sent, retrying):
        for number, age in ((1, 31), (2, 29)):
            MessageAttempt.objects.create(
                message_id=message_id, number=number, status="retrying", at=days_ago(age)
            )
    event = Message.objects.get(pk=sent).event
    for age in (9, 11):
        Decision.objects.create(
            created_at=days_ago(age), event=event, channel="mail", reason="opted out"
        )

    summary = retention_run()

    assert (summary.messages, summary.attempts, summary.decisions) == (0, 1, 1)
    assert set(MessageAttempt.objects.values_list("message_id", "number")) == {
        (sent, 2),
        (retrying, 1),  # its message may still be tried: its log stays whole
        (retrying, 2),
    }
    assert Decision.objects.get().created_at > days_ago(10)


def test_dashboard_and_campaign_totals_are_the_same_after_a_purge(channel, settings):
    settings.NOTIFIER = {**settings.NOTIFIER, "MESSAGE_RETENTION_DAYS": 2}
    audience = Audience.objects.create(name="List", kind="contacts")
    campaign = Campaign.objects.create(
        name="Spring",
        event=factories.EventFactory(key="spring"),
        audience=audience,
        status="done",
    )
    # Every time at least an hour before ``now``, and the dashboard read as of ``now``: run a
    # minute before midnight, a send "5 minutes later" would fall on a day the window has not
    # reached yet.
    now = timezone.now()
    for age in (0, 1, 3, 4, 5, 10):
        when = now - dt.timedelta(days=age, hours=1)
        written(2, status="sent", created_at=when, sent_at=when + dt.timedelta(minutes=5))
        written(1, status="failed", created_at=when, updated_at=when + dt.timedelta(hours=1))
        written(1, status="cancelled", created_at=when, updated_at=when)
    in_campaign = written(3, status="sent", created_at=days_ago(6), sent_at=days_ago(6))
    Message.objects.filter(pk__in=in_campaign).update(campaign=campaign, language="en")
    written(1, status="queued", created_at=days_ago(4))  # active: stays, counted live
    stats_before = delivery_stats(now=now)
    counts_before = campaign_message_counts(campaign)
    report_before = campaign_report(campaign).totals

    summary = retention_run()

    assert summary.messages == 4 * 4 + 3  # days 3, 4, 5, 10 and the campaign's
    assert Message.objects.filter(campaign=campaign).count() == 0
    stats_after = delivery_stats(now=now)
    assert stats_after == stats_before
    assert sum(stats_after.sent_per_day) == 2 * 6 + 3  # all six days and the campaign
    assert campaign_message_counts(campaign) == counts_before == {"sent": 3}
    assert campaign_report(campaign).totals == report_before == {("mail", "en"): {"sent": 3}}


def test_the_dashboard_adds_one_query_for_the_purged_counts(channel):
    written(1, status="sent", sent_at=timezone.now())
    delivery_stats()
    with CaptureQueriesContext(connection) as queries:
        delivery_stats()
    assert len(queries) == 6


def test_content_mode_keeps_the_row_and_drops_its_content(channel, settings):
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "MESSAGE_RETENTION_DAYS": 30,
        "RETENTION_MODE": "content",
    }
    old = days_ago(31)
    (stripped,) = written(
        1,
        status="sent",
        created_at=old,
        updated_at=old,
        sent_at=old,
        subject="Order A-1 shipped",
        text="Hello",
        html="<p>Hello</p>",
        provider_id="p-1",
    )
    (active,) = written(1, status="retrying", created_at=old, subject="Keep")

    assert retention_run().messages == 1
    row = Message.objects.get(pk=stripped)
    assert (row.subject, row.text, row.html, row.context) == ("", "", "", {})
    assert row.content_dropped_at is not None
    assert (row.status, row.provider_id, row.address, row.updated_at) == (
        "sent",
        "p-1",
        "p0@x.io",
        old,  # the dashboard dates a failure by it: untouched
    )
    assert Message.objects.get(pk=active).subject == "Keep"
    assert retention_run().messages == 0  # done once
    assert not MessageDayCount.objects.exists()  # nothing deleted, nothing to add


def test_the_message_page_says_the_content_was_dropped(channel, settings, admin_client):
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "MESSAGE_RETENTION_DAYS": 30,
        "RETENTION_MODE": "content",
    }
    (pk,) = written(1, status="sent", created_at=days_ago(31), sent_at=days_ago(31))
    url = f"/admin/campaigns/message/{pk}/change/"
    assert "Order A-1 shipped" in admin_client.get(url).content.decode()  # made again
    retention_run()
    html = admin_client.get(url).content.decode()
    assert 'id="message-content-dropped"' in html
    assert "Order  shipped" not in html  # not made again from the emptied context


def test_an_unknown_mode_is_refused_by_name(channel, settings):
    settings.NOTIFIER = {**settings.NOTIFIER, "RETENTION_MODE": "shred"}
    with pytest.raises(Exception, match=r"RETENTION_MODE.*shred.*delete, content"):
        retention_run()


def test_batches_are_bounded(channel, settings):
    settings.NOTIFIER = {**settings.NOTIFIER, "MESSAGE_RETENTION_DAYS": 1}
    written(7, status="sent", created_at=days_ago(3))
    with CaptureQueriesContext(connection) as queries:
        summary = retention_run(batch=3)
    deletes = [q["sql"] for q in queries if q["sql"].startswith('DELETE FROM "campaigns_message"')]
    locked = [q["sql"] for q in queries if "SKIP LOCKED" in q["sql"]]
    assert summary.messages == 7
    assert [d.split(" IN (")[1].count(",") + 1 for d in deletes] == [3, 3, 1]
    assert len(locked) == 3 + 1  # the message batches, then one attempts pass finding none
    assert not Message.objects.exists()


def test_the_command_dry_run_prints_and_deletes_nothing(channel, settings, capsys):
    settings.NOTIFIER = {**settings.NOTIFIER, "MESSAGE_RETENTION_DAYS": 1}
    written(2, status="sent", created_at=days_ago(3))
    call_command("notifier_retention", "--dry-run")
    out = capsys.readouterr().out
    assert "would delete 2 finished message(s) older than 1 day(s)" in out
    assert "attempts: would delete 0 older than 30 day(s)" in out
    assert Message.objects.count() == 2
    call_command("notifier_retention")
    assert "deleted 2 finished message(s)" in capsys.readouterr().out
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_purge_holding_its_batch_does_not_hold_up_a_worker(settings, run_worker):
    settings.NOTIFIER = {**settings.NOTIFIER, "MESSAGE_RETENTION_DAYS": 1}
    channel = factories.memory_channel("mail")
    factories.TemplateFactory(channel=channel, event__key="order-shipped")
    written(5, status="sent", created_at=days_ago(3))
    batch_open, worker_done = threading.Event(), threading.Event()
    result: dict = {}

    def purge():
        try:
            with transaction.atomic():  # the batch's transaction stays open: its locks held
                result["deleted"], _ = retention._messages_batch(
                    now=timezone.now(), mode="delete", batch=100
                )
                batch_open.set()
                result["waited_out"] = not worker_done.wait(timeout=20)
        finally:
            connection.close()

    thread = threading.Thread(target=purge)
    thread.start()
    assert batch_open.wait(timeout=20)
    fresh = notify("order-shipped", {"email": "new@x.io"}, {"order_id": "9"}).messages[0]
    assert run_worker() == 1  # claim, send, record while the purge holds its rows
    fresh.refresh_from_db()
    worker_done.set()
    thread.join()
    assert fresh.status == "sent"
    assert [o.address for o in locmem.outbox] == ["new@x.io"]
    assert (result["deleted"], result["waited_out"]) == (5, False)
    assert Message.objects.count() == 1


def test_a_second_purge_skips_the_rows_a_first_one_holds(settings, transactional_db):
    settings.NOTIFIER = {**settings.NOTIFIER, "MESSAGE_RETENTION_DAYS": 1}
    channel = factories.memory_channel("mail")
    factories.TemplateFactory(channel=channel, event__key="order-shipped")
    written(4, status="sent", created_at=days_ago(3))
    batch_open, second_done = threading.Event(), threading.Event()

    def first():
        try:
            with transaction.atomic():
                retention._messages_batch(now=timezone.now(), mode="delete", batch=2)
                batch_open.set()
                second_done.wait(timeout=20)
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert batch_open.wait(timeout=20)
    assert retention_run().messages == 2  # the other two: none waited for
    second_done.set()
    thread.join()
    assert not Message.objects.exists()
    assert sum(MessageDayCount.objects.values_list("count", flat=True)) == 4


def test_the_day_counts_page_is_for_who_reads_messages(channel, client, django_user_model):
    settings_line = "Finished messages are kept 90 days"
    support = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    support.groups.add(Group.objects.get(name="Support"))
    marketing = django_user_model.objects.create_user("mia", password="pw", is_staff=True)
    marketing.groups.add(Group.objects.get(name="Marketing"))
    MessageDayCount.objects.create(
        day=dt.date(2026, 1, 2),
        done_day=dt.date(2026, 1, 2),
        event="order-shipped",
        channel="mail",
        status="sent",
        count=41,
    )
    client.force_login(support)
    page = client.get("/admin/campaigns/messagedaycount/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "41" in html and settings_line in html
    assert client.get("/admin/campaigns/messagedaycount/1/change/").status_code in (403, 404, 302)
    client.force_login(marketing)
    assert client.get("/admin/campaigns/messagedaycount/").status_code == 403


def test_the_retention_job_runs_hourly_from_the_cron_in_the_bulk_lane(redis_connection):
    scheduler = CronScheduler(connection=redis_connection)
    scheduler.load_config_from_file("campaigns.cron")
    (job,) = [job for job in scheduler.get_jobs() if job.func is jobs.retention]
    assert (job.interval, job.queue_name) == (3600, "notifier-bulk")
    assert not [job for job in scheduler.get_jobs() if "decisions" in job.func.__name__]


def test_a_worker_runs_the_retention_job_from_the_bulk_queue(channel, settings, run_worker):
    settings.NOTIFIER = {**settings.NOTIFIER, "MESSAGE_RETENTION_DAYS": 1}
    written(3, status="sent", created_at=days_ago(3))
    kept = written(1, status="sent")
    job = get_queue(BULK).enqueue("campaigns.jobs.retention")  # as RQ's cron enqueues it
    assert run_worker() == 1
    job.refresh()
    assert job.return_value()["messages"] == 3
    assert list(Message.objects.values_list("pk", flat=True)) == kept
