"""Digests: a digested event's occurrences for a recipient on a channel within a window
collapse into one message (the outbox row, scheduled at the window's end) whose template
lists them all — one email at the SMTP server, however many occurrences, two windows two
messages, concurrent calls one message; the recipient's frequency from the preference
centre, where the event allows it. Real PostgreSQL, Redis, RQ and SMTP throughout."""

from __future__ import annotations

import datetime as dt
import threading
import time
import zoneinfo

import pytest
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from campaigns.api import notify
from campaigns.domain.digests import Frequency, digest_window
from campaigns.models import DigestItem, DigestPreference, Message
from campaigns.outbox.catalog import catalog_settled
from campaigns.outbox.dispatch import message_content, message_dispatch
from campaigns.outbox.sweep import sweep
from tests import factories
from tests.conftest import output

UTC = dt.UTC
DIGEST_TEXT = (
    "{{ digest.count }} orders shipped:{% for item in digest.items %} {{ item.order_id }}"
    "{% endfor %}"
)


@pytest.fixture
def hourly(email_channel):
    template = factories.TemplateFactory(
        channel=email_channel,
        event__key="order-shipped",
        event__digest=Frequency.HOURLY,
        subject="{{ digest.count }} orders shipped",
        text_body=DIGEST_TEXT,
    )
    return template.event


def window_end(at: dt.datetime) -> dt.datetime:
    return digest_window(Frequency.HOURLY, at=at, tz=UTC, daily_at=dt.time(9))[1]


@pytest.mark.django_db
def test_many_occurrences_in_a_window_are_one_email_listing_them_all(
    hourly, smtp, run_worker, committed
):
    ann = {"email": "ann@example.com", "tz": "UTC"}
    with committed():
        results = [notify("order-shipped", ann, {"order_id": f"A-{n}"}) for n in range(1, 6)]
    message = Message.objects.get()
    assert {r.messages[0].pk for r in results} == {message.pk}
    assert message.status == "scheduled"
    end = window_end(timezone.now())
    assert message.next_attempt_at == end
    assert DigestItem.objects.filter(message=message).count() == 5
    assert run_worker() == 0  # nothing is due before the window ends

    with committed():
        assert sweep(now=end + dt.timedelta(seconds=1)).enqueued == 1
    run_worker()
    (email,) = smtp.messages
    assert email["Subject"] == "5 orders shipped"
    assert email.get_content().strip() == "5 orders shipped: A-1 A-2 A-3 A-4 A-5"
    message.refresh_from_db()
    assert message.status == "sent"
    # The message page shows it again, items and all.
    assert "A-1 A-2 A-3 A-4 A-5" in message_content(message)[1]


@pytest.mark.django_db
def test_two_windows_are_two_messages(hourly, smtp, run_worker, committed):
    ann = {"email": "ann@example.com", "tz": "UTC"}
    next_hour = window_end(timezone.now()) + dt.timedelta(minutes=5)
    with committed():
        first = notify("order-shipped", ann, {"order_id": "A-1"}).messages[0]
        second = notify("order-shipped", ann, {"order_id": "A-2"}, scheduled_at=next_hour)
        third = notify("order-shipped", ann, {"order_id": "A-3"}, scheduled_at=next_hour)
    assert second.messages[0].pk == third.messages[0].pk != first.pk
    assert Message.objects.count() == 2
    with committed():
        assert sweep(now=window_end(next_hour) + dt.timedelta(seconds=1)).enqueued == 2
    run_worker()
    assert sorted(m["Subject"] for m in smtp.messages) == ["1 orders shipped", "2 orders shipped"]


@pytest.mark.django_db
def test_other_recipients_and_channels_get_digests_of_their_own(hourly, committed):
    with committed():
        notify(
            "order-shipped",
            [{"email": "a@example.com"}, {"email": "b@example.com"}],
            {"order_id": "1"},
        )
        notify("order-shipped", {"email": "a@example.com"}, {"order_id": "2"})
    counts = dict(Message.objects.annotate(n=Count("digest_items")).values_list("address", "n"))
    assert counts == {"a@example.com": 2, "b@example.com": 1}


@pytest.mark.django_db
def test_an_occurrence_after_its_windows_digest_was_queued_goes_to_the_next_window(
    hourly, smtp, run_worker, committed
):
    ann = {"email": "ann@example.com", "tz": "UTC"}
    with committed():
        notify("order-shipped", ann, {"order_id": "A-1"})
    end = window_end(timezone.now())
    with committed():
        sweep(now=end + dt.timedelta(seconds=1))  # queued: on its way, it takes no more items
    with committed():
        late = notify("order-shipped", ann, {"order_id": "A-2"}).messages[0]
    assert late.next_attempt_at == end + dt.timedelta(hours=1)
    run_worker()
    assert [m.get_content().strip() for m in smtp.messages] == ["1 orders shipped: A-1"]
    assert Message.objects.get(pk=late.pk).status == "scheduled"


@pytest.mark.django_db(transaction=True)
def test_concurrent_notify_calls_for_one_window_write_one_message(hourly):
    threads_count, calls = 6, 5
    barrier = threading.Barrier(threads_count)
    errors = []

    def occur(n: int) -> None:
        try:
            barrier.wait()
            for i in range(calls):
                notify("order-shipped", {"email": "ann@example.com"}, {"order_id": f"{n}-{i}"})
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=occur, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    message = Message.objects.get()
    assert DigestItem.objects.filter(message=message).count() == threads_count * calls


@pytest.mark.django_db
def test_a_daily_digest_is_due_at_its_time_in_the_recipients_timezone(hourly):
    hourly.digest = Frequency.DAILY
    hourly.digest_at = dt.time(9, 0)
    hourly.save(update_fields=["digest", "digest_at"])
    (message,) = notify(
        "order-shipped", {"email": "a@example.com", "tz": "Asia/Tokyo"}, {"order_id": "1"}
    ).messages
    due = message.next_attempt_at.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert (due.hour, due.minute) == (9, 0)
    assert timezone.now() < message.next_attempt_at <= timezone.now() + dt.timedelta(days=1)


# --- the recipient's choice -----------------------------------------------------------------


@pytest.fixture
def choosable(email_channel, django_user_model):
    template = factories.TemplateFactory(
        channel=email_channel,
        event__key="comment-posted",
        event__name="New comments",
        event__user_configurable=True,
        event__digest_choice=True,
        subject="{{ digest.count|default:'A' }} comment(s)",
        text_body="Comment {{ order_id }}",
    )
    user = django_user_model.objects.create_user("ann", "ann@example.com", "pw-ann-123")
    user_tz = {"tz": "Europe/Berlin"}
    return template.event, user, user_tz


def preferences_post(user, event, frequency: str) -> Client:
    client = Client()
    client.force_login(user)
    page = client.get("/preferences/")
    assert page.status_code == 200
    form = {s.name: "on" for s in page.context["page"].switches() if s.editable and s.on}
    form[f"digest-{event.pk}"] = frequency
    assert client.post("/preferences/", form).status_code == 302
    return client


@pytest.mark.django_db
def test_choosing_daily_in_the_preference_centre_changes_the_window(choosable):
    event, user, _ = choosable
    (before,) = notify(
        "comment-posted", {"user_id": user.pk, "tz": "Europe/Berlin"}, {"order_id": "1"}
    ).messages
    assert (before.status, before.digest_key) == ("queued", "")  # immediately, by default

    client = preferences_post(user, event, "daily")
    assert DigestPreference.objects.get().frequency == "daily"
    html = client.get("/preferences/").content.decode()
    assert f'name="digest-{event.pk}"' in html and '<option value="daily" selected>' in html

    after = [
        notify(
            "comment-posted", {"user_id": user.pk, "tz": "Europe/Berlin"}, {"order_id": n}
        ).messages[0]
        for n in ("2", "3")
    ]
    assert after[0].pk == after[1].pk
    message = Message.objects.get(pk=after[0].pk)
    assert message.status == "scheduled" and message.digest_key
    due = message.next_attempt_at.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    assert (due.hour, due.minute) == (9, 0)
    assert DigestItem.objects.filter(message=message).count() == 2

    preferences_post(user, event, "immediately")  # and back
    (again,) = notify("comment-posted", {"user_id": user.pk}, {"order_id": "4"}).messages
    assert (again.status, again.digest_key) == ("queued", "")


@pytest.mark.django_db
def test_an_event_that_does_not_allow_digests_ignores_the_choice(choosable):
    event, user, _ = choosable
    event.digest_choice = False
    event.save(update_fields=["digest_choice"])
    client = Client()
    client.force_login(user)
    page = client.get("/preferences/")
    assert f'name="digest-{event.pk}"' not in page.content.decode()
    form = {s.name: "on" for s in page.context["page"].switches() if s.editable and s.on}
    client.post("/preferences/", {**form, f"digest-{event.pk}": "daily"})
    assert not DigestPreference.objects.exists()  # the form offered none: nothing saved
    DigestPreference.objects.create(user=user, event=event, frequency="daily")  # one left over
    (message,) = notify("comment-posted", {"user_id": user.pk}, {"order_id": "1"}).messages
    assert (message.status, message.digest_key) == ("queued", "")


#: notify() of a digested event for one recipient: the recipient facts (as for any event),
#: then in one transaction (its savepoint and release) the window message's upsert and the
#: item's INSERT; and the recipients' choices when the event offers one.
DIGEST_NOTIFY_QUERIES = 5
#: A dispatch batch of digests: the pinned three (claim, recheck, results) and their items.
DIGEST_DISPATCH_QUERIES = 4


@pytest.mark.django_db
@pytest.mark.parametrize("choice", [False, True])
def test_digest_query_counts_are_pinned(hourly, choice, django_assert_num_queries, committed):
    hourly.digest_choice = choice
    hourly.save(update_fields=["digest_choice"])
    catalog_settled()
    notify("order-shipped", {"email": "warm@example.com"}, {"order_id": "0"})  # catalog kept
    with django_assert_num_queries(DIGEST_NOTIFY_QUERIES + choice):
        notify("order-shipped", {"email": "ann@example.com"}, {"order_id": "1"})
    with django_assert_num_queries(DIGEST_NOTIFY_QUERIES + choice):  # into the same message
        notify("order-shipped", {"email": "ann@example.com"}, {"order_id": "2"})
    ids = list(Message.objects.values_list("pk", flat=True))
    assert len(ids) == 2
    Message.objects.update(next_attempt_at=timezone.now())  # due now
    with django_assert_num_queries(DIGEST_DISPATCH_QUERIES):
        summary = message_dispatch(message_ids=ids)
    assert summary.as_dict() == {"claimed": 2, "sent": 2}


NOTIFY_SCRIPT = """
import time
from campaigns.api import notify
start = {start}
time.sleep(max(0, start - time.time()))
for i in range({calls}):
    notify("order-shipped", {{"email": "ann@example.com"}}, {{"order_id": "{name}-%d" % i}})
print("done", flush=True)
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_notify_calls_from_two_processes_write_one_message(hourly, spawn):
    calls = 20
    start = time.time() + 3  # both have started Django by then
    processes = [
        spawn("shell", "-c", NOTIFY_SCRIPT.format(start=start, calls=calls, name=name))
        for name in ("p", "q")
    ]
    for process in processes:
        assert process.wait(timeout=60) == 0, output(process)
        assert "done" in output(process)
    message = Message.objects.get()
    items = set(
        DigestItem.objects.filter(message=message).values_list("context__order_id", flat=True)
    )
    assert items == {f"{name}-{i}" for name in ("p", "q") for i in range(calls)}
