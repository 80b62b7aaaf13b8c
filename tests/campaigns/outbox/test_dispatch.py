"""The send path end to end: notify() → RQ worker → SMTP server, with retries, permanent
failures, crash recovery and concurrency — real PostgreSQL, Redis, RQ and SMTP throughout."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections import Counter

import pytest
from django.core import mail
from django.utils import timezone

from campaigns.api import notify
from campaigns.conf import app_settings
from campaigns.models import Message, MessageStatus
from campaigns.outbox.claim import messages_claim
from campaigns.outbox.dispatch import message_content, message_dispatch
from campaigns.outbox.sweep import sweep
from channels.conf import channel_settings
from tests import factories
from tests.conftest import output, worker_queues

MJML = (
    "<mjml><mj-body><mj-section><mj-column>"
    "<mj-text>{{ greeting }}, {{ recipient.name }}: order <b>{{ order_id }}</b></mj-text>"
    "</mj-column></mj-section></mj-body></mjml>"
)


def order_event(channel, *, languages=("en", "de")):
    event = factories.EventFactory(
        key="order-shipped",
        variables=[
            {"name": "order_id", "label": "Order", "sample": "A-1"},
            {"name": "greeting", "label": "Greeting", "sample": "Hi"},
        ],
    )
    subjects = {"en": "Order {{ order_id }} shipped", "de": "Bestellung {{ order_id }} versandt"}
    for language in languages:
        factories.TemplateFactory(
            event=event,
            channel=channel,
            language=language,
            subject=subjects[language],
            text_body=f"[{language}] " + "{{ greeting }} {{ recipient.name }}, {{ order_id }}",
            html_body=MJML,
        )
    return event


def drive(run_worker, committed, *, rounds: int = 6) -> None:
    """Run workers and sweeps until nothing is due (retries are due at once in tests)."""
    for _ in range(rounds):
        run_worker()
        with committed():
            enqueued = sweep().enqueued
        if not enqueued:
            return


@pytest.mark.django_db
def test_notify_delivers_through_rq_worker_to_smtp(email_channel, smtp, run_worker, committed):
    order_event(email_channel)
    recipients = [
        {"email": "ann@example.com", "name": "Ann", "language": "en"},
        {"email": "bert@example.de", "name": "Bert", "language": "de-AT"},
        {"email": "chloe@example.com", "name": "Chloé", "language": "pt-br"},
    ]

    with committed():
        result = notify("order-shipped", recipients, {"order_id": "<A-7>", "greeting": "Hello"})

    assert [m.status for m in result.messages] == ["queued"] * 3
    assert run_worker() == 1  # one dispatch job carried the whole batch
    messages = {m.address: m for m in Message.objects.all()}
    assert {m.status for m in messages.values()} == {MessageStatus.SENT}
    assert {a: m.language for a, m in messages.items()} == {
        "ann@example.com": "en",
        "bert@example.de": "de",
        "chloe@example.com": "en",
    }
    received = {str(m["To"]): m for m in smtp.messages}
    assert sorted(received) == sorted(messages)
    for address, message in messages.items():
        mail_ = received[address]
        assert mail_["Message-ID"] == f"<{message.uuid}@{channel_settings.EMAIL_DOMAIN}>"
        assert message.provider_id == mail_["Message-ID"]
        assert mail_["From"] == "Shop <shop@example.com>"
        text = mail_.get_body(("plain",)).get_content()
        html = mail_.get_body(("html",)).get_content()
        assert "<A-7>" in text  # text bodies are not escaped
        assert "&lt;A-7&gt;" in html and "<A-7>" not in html  # HTML bodies are
        assert "<table" in html  # MJML was compiled
        # The row keeps no copy of an email's body; the support desk sees it made again.
        assert message.html == ""
        assert message_content(message)[2].strip() == html.replace("\r\n", "\n").strip()
    assert received["bert@example.de"]["Subject"] == "Bestellung <A-7> versandt"
    assert received["ann@example.com"]["Subject"] == "Order <A-7> shipped"
    assert (
        "[de] Hello Bert, <A-7>" in received["bert@example.de"].get_body(("plain",)).get_content()
    )
    assert "Hello Chloé" in received["chloe@example.com"].get_body(("plain",)).get_content()


@pytest.mark.django_db
def test_smtp_451_twice_then_accepted_is_sent_on_third_attempt(
    email_channel, smtp, run_worker, committed
):
    order_event(email_channel)
    smtp.replies = ["451 4.3.0 Mailbox busy, try later"] * 2

    with committed():
        notify("order-shipped", {"email": "ann@example.com"}, {"order_id": "1", "greeting": "Hi"})

    run_worker()
    message = Message.objects.get()
    assert message.status == MessageStatus.RETRYING
    assert "451" in message.last_error and "try later" in message.last_error
    assert message.next_attempt_at is not None
    drive(run_worker, committed)
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == ("sent", 3, "")
    log = list(message.attempt_log.values_list("number", "status", "error"))
    assert [(n, s) for n, s, _ in log] == [(1, "retrying"), (2, "retrying"), (3, "sent")]
    assert "451" in log[0][2] and log[2][2] == ""
    assert smtp.message_ids == [f"<{message.uuid}@{channel_settings.EMAIL_DOMAIN}>"]


@pytest.mark.django_db
def test_smtp_550_fails_at_once_with_the_server_text(email_channel, smtp, run_worker, committed):
    order_event(email_channel)
    smtp.always = "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"

    with committed():
        notify(
            "order-shipped", {"email": "nobody@example.com"}, {"order_id": "1", "greeting": "Hi"}
        )
    drive(run_worker, committed)

    message = Message.objects.get()
    assert message.status == MessageStatus.FAILED
    assert message.attempts == 1
    assert "SMTP 550" in message.last_error
    assert "Recipient address rejected: User unknown" in message.last_error
    assert smtp.messages == []


@pytest.mark.django_db
def test_transient_errors_give_up_after_max_attempts(email_channel, smtp, run_worker, committed):
    email_channel.max_attempts = 2
    email_channel.save(update_fields=["max_attempts"])
    order_event(email_channel)
    smtp.always = "421 4.7.0 Too many connections"

    with committed():
        notify("order-shipped", {"email": "ann@example.com"}, {"order_id": "1", "greeting": "Hi"})
    drive(run_worker, committed)

    message = Message.objects.get()
    assert (message.status, message.attempts) == ("failed", 2)
    assert "gave up after 2 attempts" in message.last_error


@pytest.mark.django_db
def test_scheduled_message_waits_for_the_sweep(email_channel, smtp, run_worker, committed):
    order_event(email_channel)
    later = timezone.now() + dt.timedelta(hours=1)

    with committed():
        notify(
            "order-shipped",
            {"email": "a@example.com"},
            {"order_id": "1", "greeting": "Hi"},
            scheduled_at=later,
        )

    assert run_worker() == 0
    with committed():
        assert sweep().enqueued == 0
    message = Message.objects.get()
    assert (message.status, message.next_attempt_at) == ("scheduled", later)
    with committed():
        assert sweep(now=later + dt.timedelta(seconds=1)).enqueued == 1
    run_worker()
    message.refresh_from_db()
    assert message.status == "sent"
    assert len(smtp.messages) == 1


@pytest.mark.django_db
def test_jobs_lost_with_redis_are_enqueued_again_by_the_sweep(
    email_channel, smtp, run_worker, redis_connection, committed
):
    order_event(email_channel)
    with committed():
        notify(
            "order-shipped",
            [{"email": f"u{i}@example.com"} for i in range(3)],
            {"order_id": "1", "greeting": "Hi"},
        )
    redis_connection.flushdb()  # Redis lost everything: the jobs are gone

    assert run_worker() == 0
    with committed():
        assert sweep().enqueued == 0  # not yet: the queue lease still runs
    later = timezone.now() + dt.timedelta(seconds=app_settings.QUEUED_TIMEOUT + 1)
    with committed():
        assert sweep(now=later).enqueued == 3
    run_worker()
    assert Counter(Message.objects.values_list("status", flat=True)) == {"sent": 3}
    assert len(smtp.messages) == 3


@pytest.mark.django_db
def test_expired_leases_are_reclaimed_and_delivered_once(
    email_channel, smtp, run_worker, committed
):
    """A worker claimed a batch and died before sending: the sweep gives it to another."""
    order_event(email_channel)
    with committed():
        result = notify(
            "order-shipped",
            [{"email": f"u{i}@example.com"} for i in range(5)],
            {"order_id": "1", "greeting": "Hi"},
        )
    ids = [m.pk for m in result.messages]
    run_worker_before = messages_claim(message_ids=ids)  # the dead worker's claim
    assert len(run_worker_before) == 5
    assert run_worker() == 1  # its job finds nothing left to claim
    assert smtp.messages == []

    with committed():
        assert sweep().reclaimed == 0  # the lease still runs
    later = timezone.now() + dt.timedelta(seconds=app_settings.LEASE_SECONDS + 1)
    with committed():
        summary = sweep(now=later)
    assert summary.reclaimed == 5
    run_worker()

    assert Counter(Message.objects.values_list("status", flat=True)) == {"sent": 5}
    assert sorted(smtp.message_ids) == sorted(
        f"<{m.uuid}@{channel_settings.EMAIL_DOMAIN}>" for m in Message.objects.all()
    )
    assert set(Message.objects.values_list("attempts", flat=True)) == {2}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
def test_killed_worker_repeats_at_most_the_message_in_flight(
    email_channel, smtp, run_worker, spawn, close_db_after, pipelining
):
    """SIGKILL a real worker process mid-batch: what it sent is known from the journal, so
    after the sweep each message is delivered once, except at most the one in flight. The
    same with a server that offers PIPELINING, where the worker begins the next message's
    transaction (MAIL, RCPT, DATA) before it journals the last result."""
    order_event(email_channel)
    smtp.delay = 0.25
    smtp.pipelining = pipelining
    result = notify(
        "order-shipped",
        [{"email": f"u{i}@example.com"} for i in range(12)],
        {"order_id": "1", "greeting": "Hi"},
    )
    worker = spawn(
        "rqworker",
        *worker_queues(),
        "--burst",
        "--worker-class",
        "rq.worker.SimpleWorker",
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while smtp.count < 4:
        assert time.monotonic() < deadline, output(worker)
        assert worker.poll() is None, output(worker)
        time.sleep(0.02)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    delivered_before = smtp.count
    assert delivered_before < 12
    assert Message.objects.filter(status="sending").count() == 12

    later = timezone.now() + dt.timedelta(seconds=app_settings.LEASE_SECONDS + 1)
    summary = sweep(now=later)
    assert summary.recovered >= delivered_before - 1  # journaled sends are recorded as sent
    assert summary.recovered + summary.reclaimed == 12
    run_worker()

    assert Counter(Message.objects.values_list("status", flat=True)) == {"sent": 12}
    counts = Counter(smtp.message_ids)
    expected = {f"<{m.uuid}@{channel_settings.EMAIL_DOMAIN}>" for m in result.messages}
    assert set(counts) == expected
    assert sum(counts.values()) - len(expected) <= 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_workers_and_two_sweeps_send_each_message_exactly_once(id_sink, spawn, close_db_after):
    """2,000 messages, half due now and half scheduled, two worker processes and two sweep
    loops that re-enqueue every queued row after one second (QUEUED_TIMEOUT=1): duplicate jobs
    galore, and still each message reaches the SMTP server once."""
    port, ids = id_sink
    order_event(factories.email_channel(port=port), languages=("en",))
    people = [{"email": f"person{i}@example.com"} for i in range(2000)]
    notify("order-shipped", people[:1000], {"order_id": "1", "greeting": "Hi"})
    notify(
        "order-shipped",
        people[1000:],
        {"order_id": "2", "greeting": "Hi"},
        scheduled_at=timezone.now() + dt.timedelta(seconds=2),
    )
    expected = {
        f"<{u}@{channel_settings.EMAIL_DOMAIN}>"
        for u in Message.objects.values_list("uuid", flat=True)
    }
    env = {"NOTIFIER_QUEUED_TIMEOUT": "1", "NOTIFIER_BATCH_SIZE": "100"}
    processes = []
    for _ in range(2):
        processes.append(
            spawn("process_notifications", "--loop", "--interval", "0.2", env_overrides=env)
        )
        processes.append(
            spawn(
                "rqworker",
                *worker_queues(),
                "--worker-class",
                "rq.worker.SimpleWorker",
                env_overrides=env,
            )
        )
    deadline = time.monotonic() + 240
    while len(ids()) < 2000 and time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, output(process)
        time.sleep(0.5)
    time.sleep(1.5)  # let anything in flight land, so a duplicate would be seen

    counts = Counter(ids())
    assert set(counts) == expected, Counter(Message.objects.values_list("last_error", flat=True))
    assert max(counts.values()) == 1
    assert Counter(Message.objects.values_list("status", flat=True)) == {"sent": 2000}


@pytest.mark.django_db
def test_email_channel_sends_through_any_django_mailer(run_worker, committed):
    """Without a host, the channel uses settings.MAILERS (here Django's locmem backend)."""
    channel = factories.ChannelFactory(
        key="mailer-email",
        backend="channels.backends.email.EmailBackend",
        config={"mailer": "default"},
    )
    order_event(channel, languages=("en",))
    mail.outbox = []

    with committed():
        notify("order-shipped", {"email": "ann@example.com"}, {"order_id": "9", "greeting": "Hi"})
    run_worker()

    assert [m.subject for m in mail.outbox] == ["Order 9 shipped"]
    assert Message.objects.get().status == "sent"


@pytest.mark.django_db
def test_debug_send_renders_but_delivers_nothing(
    email_channel, smtp, run_worker, settings, committed
):
    settings.NOTIFIER = {**settings.NOTIFIER, "DEBUG_SEND": True}
    order_event(email_channel, languages=("en",))

    with committed():
        notify("order-shipped", {"email": "ann@example.com"}, {"order_id": "9", "greeting": "Hi"})
    run_worker()

    message = Message.objects.get()
    assert (message.status, message.subject) == ("debug", "Order 9 shipped")
    assert smtp.messages == []


@pytest.mark.django_db
@pytest.mark.parametrize("inbox", [False, True])
def test_the_journal_keeps_the_body_only_of_inbox_messages(inbox, django_user_model, committed):
    """A result journaled just before a crash is applied by the sweep. An inbox message's row
    is what its reader sees, so its rendered body is journaled too; other bodies (an email's
    HTML can weigh tens of kilobytes) are not copied to Redis."""
    from campaigns.outbox.journal import JournalWriter
    from campaigns.outbox.outcomes import outcome_for
    from channels.backends.base import Outgoing, SendResult

    backend = "inbox.InboxBackend" if inbox else "locmem.LocmemBackend"
    channel = factories.ChannelFactory(key="box", backend=f"channels.backends.{backend}")
    order_event(channel, languages=("en",))
    user = django_user_model.objects.create_user("ann", "a@example.com")
    context = {"order_id": "1", "greeting": "Hi"}
    with committed():
        (message,) = notify("order-shipped", user, context).messages
    (claimed,) = messages_claim(message_ids=[message.pk])
    claimed.subject, claimed.text = "Rendered subject", "Rendered text"
    sent = SendResult(Outgoing(id=claimed.pk, uuid=str(claimed.uuid), address="a"), "p-1")
    journal = JournalWriter(content=channel.backend_class.stores_messages)
    journal.record(outcome_for(claimed, sent, timezone.now()))
    journal.close()  # ... and the worker dies before writing its batch's results

    later = timezone.now() + dt.timedelta(seconds=app_settings.LEASE_SECONDS + 1)
    with committed():
        assert sweep(now=later, enqueue=False).recovered == 1
    row = Message.objects.get()
    assert (row.status, row.provider_id) == ("sent", "p-1")
    assert (row.subject, row.text) == ("Rendered subject", "Rendered text" if inbox else "")


@pytest.mark.django_db
def test_a_user_deactivated_after_scheduling_gets_nothing(
    email_channel, smtp, run_worker, django_user_model, committed
):
    order_event(email_channel)
    user = django_user_model.objects.create_user("gone", "gone@example.com", first_name="Gone")
    kept = django_user_model.objects.create_user("kept", "kept@example.com", first_name="Kept")
    later = timezone.now() + dt.timedelta(hours=1)
    with committed():
        notify(
            "order-shipped",
            [{"user_id": user.pk}, {"user_id": kept.pk}],
            {"order_id": "1", "greeting": "Hi"},
            scheduled_at=later,
        )
    user.is_active = False
    user.save(update_fields=["is_active"])

    with committed():
        assert sweep(now=later + dt.timedelta(seconds=1)).enqueued == 2
    run_worker()

    gone = Message.objects.get(user=user)
    assert (gone.status, gone.status_reason) == ("cancelled", "inactive user")
    assert gone.sent_at is None and gone.text == ""
    assert Message.objects.get(user=kept).status == "sent"
    assert len(smtp.raw) == 1
    assert b"kept@example.com" in smtp.raw[0] and b"gone@example.com" not in smtp.raw[0]
    assert list(gone.attempt_log.values_list("status", "error")) == [("cancelled", "inactive user")]


@pytest.mark.django_db
def test_the_delivery_log_keeps_every_try_but_a_first_one_that_was_sent(email_channel, smtp):
    """A first try that was sent is told by the message itself (sent, attempt 1, its time and
    provider id): no log row. A try that was not, and every later one, get a row each."""
    order_event(email_channel)
    context = {"order_id": "1", "greeting": "Hi"}
    (first,) = notify("order-shipped", {"email": "ann@example.com"}, context).messages
    message_dispatch(message_ids=[first.pk])
    first.refresh_from_db()
    assert (first.status, first.attempts, first.attempt_log.count()) == ("sent", 1, 0)
    assert first.provider_id and first.sent_at

    smtp.replies = ["451 4.3.0 Mailbox busy, try later"]
    (second,) = notify("order-shipped", {"email": "bob@example.com"}, context).messages
    message_dispatch(message_ids=[second.pk])  # retrying (RETRY_DELAY is 0 in tests)
    message_dispatch(message_ids=[second.pk])  # sent on the second try
    log = list(second.attempt_log.values_list("number", "status", "error", "provider_id"))
    assert [(number, status) for number, status, _, _ in log] == [(1, "retrying"), (2, "sent")]
    assert "Mailbox busy" in log[0][2] and log[1][3]
