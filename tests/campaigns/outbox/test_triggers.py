"""Delivery semantics: trigger behaviours, idempotency, content, validity, opt-outs at dispatch,
the state machine and requeueing."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from campaigns.api import (
    DuplicateNotification,
    IdempotencyConflict,
    InvalidContext,
    UnknownTemplate,
    messages_for_content,
    messages_for_user,
    notify,
    send_template,
)
from campaigns.domain.states import IllegalTransition
from campaigns.models import Message, OptOut
from campaigns.outbox.catalog import catalog, catalog_settled
from campaigns.outbox.dispatch import message_dispatch
from campaigns.outbox.outcomes import retry_delay
from campaigns.outbox.transitions import message_state
from channels.backends import locmem
from tests import factories

CONTEXT = {"order_id": "A-1"}
ANN = {"email": "ann@example.com"}


@pytest.fixture
def channel(db):
    channel = factories.memory_channel()
    factories.TemplateFactory(channel=channel, event__key="order-shipped")
    return channel


def send(result_or_messages) -> None:
    messages = getattr(result_or_messages, "messages", result_or_messages)
    message_dispatch(message_ids=[m.pk for m in messages])


def statuses() -> list[str]:
    return list(Message.objects.order_by("id").values_list("status", flat=True))


def test_default_creates_a_message_every_time(channel):
    notify("order-shipped", ANN, CONTEXT)
    notify("order-shipped", ANN, CONTEXT)
    assert Message.objects.count() == 2


def test_trigger_once_while_pending_then_again_once_processed(channel):
    first = notify("order-shipped", ANN, CONTEXT, trigger="trigger_once")
    second = notify("order-shipped", ANN, CONTEXT, trigger="trigger_once")
    assert second.messages == []
    assert [s.reason for s in second.skipped] == ["duplicate"]
    other = notify("order-shipped", {"email": "bob@example.com"}, CONTEXT, trigger="trigger_once")
    assert len(other.messages) == 1  # another recipient is another key
    send(first)
    third = notify("order-shipped", ANN, CONTEXT, trigger="trigger_once")
    assert len(third.messages) == 1
    assert statuses() == ["sent", "queued", "queued"]


def test_trigger_once_per_content(channel):
    group_a, group_b = Group.objects.create(name="a"), Group.objects.create(name="b")
    kwargs = {"trigger": "trigger_once_per_content"}
    assert len(notify("order-shipped", ANN, CONTEXT, content=group_a, **kwargs).messages) == 1
    assert len(notify("order-shipped", ANN, CONTEXT, content=group_b, **kwargs).messages) == 1
    assert notify("order-shipped", ANN, CONTEXT, content=group_a, **kwargs).messages == []
    with pytest.raises(InvalidContext, match="needs content="):
        notify("order-shipped", ANN, CONTEXT, **kwargs)


def test_send_once_only_ever_one_success(channel):
    send(notify("order-shipped", ANN, CONTEXT, trigger="send_once"))
    later = notify("order-shipped", ANN, CONTEXT, trigger="send_once")
    assert [s.reason for s in later.skipped] == ["duplicate"]
    with pytest.raises(DuplicateNotification, match="already triggered"):
        notify("order-shipped", ANN, CONTEXT, trigger="send_once", strict=True)
    assert statuses() == ["sent"]


def test_send_once_allows_a_new_try_after_a_failure(channel):
    (message,) = notify("order-shipped", ANN, CONTEXT, trigger="send_once").messages
    Message.objects.filter(pk=message.pk).update(status="failed")
    assert len(notify("order-shipped", ANN, CONTEXT, trigger="send_once").messages) == 1


def test_send_once_per_content(channel):
    invoice_1, invoice_2 = Group.objects.create(name="1"), Group.objects.create(name="2")
    kwargs = {"trigger": "send_once_per_content"}
    send(notify("order-shipped", ANN, CONTEXT, content=invoice_1, **kwargs))
    assert notify("order-shipped", ANN, CONTEXT, content=invoice_1, **kwargs).messages == []
    assert len(notify("order-shipped", ANN, CONTEXT, content=invoice_2, **kwargs).messages) == 1


def test_last_only_cancels_the_pending_ones(channel):
    notify("order-shipped", ANN, {"order_id": "1"}, trigger="last_only")
    notify("order-shipped", ANN, {"order_id": "2"}, trigger="last_only")
    notify("order-shipped", {"email": "bob@example.com"}, {"order_id": "3"}, trigger="last_only")
    rows = list(Message.objects.order_by("id").values_list("status", "status_reason", "context"))
    assert rows == [
        ("cancelled", "superseded by a newer trigger", {"order_id": "1"}),
        ("queued", "", {"order_id": "2"}),
        ("queued", "", {"order_id": "3"}),
    ]


def test_the_events_trigger_is_the_default(channel):
    factories.EventFactory(key="order-shipped", trigger="trigger_once")
    event = channel.templates.get().event
    event.trigger = "trigger_once"
    event.save(update_fields=["trigger"])
    notify("order-shipped", ANN, CONTEXT)
    assert notify("order-shipped", ANN, CONTEXT).messages == []
    assert len(notify("order-shipped", ANN, CONTEXT, trigger="default").messages) == 1


def test_delete_after_processing_keeps_failures_only(channel):
    event = channel.templates.get().event
    event.delete_after_processing = True
    event.save(update_fields=["delete_after_processing"])
    sent = notify("order-shipped", ANN, CONTEXT)
    broken = notify("order-shipped", {"email": "bob@example.com"}, CONTEXT)
    Message.objects.filter(pk=broken.messages[0].pk).update(template_version=None)
    send(sent.messages + broken.messages)
    assert statuses() == ["broken"]
    assert [o.address for o in locmem.outbox] == ["ann@example.com"]


def test_idempotency_key(channel):
    first = notify("order-shipped", [ANN, {"phone": "1"}], CONTEXT, idempotency_key="order-1")
    again = notify("order-shipped", [ANN, {"phone": "1"}], CONTEXT, idempotency_key="order-1")
    assert [m.pk for m in again.messages] == [m.pk for m in first.messages]
    assert [s.reason for s in again.skipped] == ["no address"]
    assert Message.objects.count() == 1
    with pytest.raises(IdempotencyConflict, match="'order-1' was used before"):
        notify("order-shipped", ANN, {"order_id": "B-2"}, idempotency_key="order-1")
    assert Message.objects.count() == 1


def _concurrently(call, n: int = 2) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(index):
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as error:
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("behaviour", ["trigger_once", "send_once"])
def test_concurrent_once_triggers_create_exactly_one_message(behaviour):
    assert connection.vendor == "postgresql"
    channel = factories.memory_channel()
    factories.TemplateFactory(channel=channel, event__key="order-shipped")
    people = [{"email": f"p{i}@example.com"} for i in range(50)]

    results = _concurrently(lambda: notify("order-shipped", people, CONTEXT, trigger=behaviour), 4)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(len(r.messages) for r in results) == 50
    assert sum(len(r.skipped) for r in results) == 150
    assert Message.objects.count() == 50


@pytest.mark.django_db(transaction=True)
def test_concurrent_calls_with_one_idempotency_key_create_once():
    channel = factories.memory_channel()
    factories.TemplateFactory(channel=channel, event__key="order-shipped")

    results = _concurrently(lambda: notify("order-shipped", ANN, CONTEXT, idempotency_key="k"), 3)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert Message.objects.count() == 1
    assert {tuple(m.pk for m in r.messages) for r in results} == {(Message.objects.get().pk,)}


def test_content_related_objects_and_selectors(channel, django_user_model):
    ann = django_user_model.objects.create_user("ann", "ann@example.com")
    boss = django_user_model.objects.create_user("boss", "boss@example.com")
    order, shop = Group.objects.create(name="order-7"), Group.objects.create(name="shop")
    (message,) = notify(
        "order-shipped",
        ann,
        CONTEXT,
        content=order,
        related_objects=[shop],
        trigger_user=boss,
        tag="orders",
        extra={"priority": 1},
    ).messages
    message = Message.objects.get(pk=message.pk)
    assert (message.content, message.trigger_user, message.tag) == (order, boss, "orders")
    assert [r.content_object for r in message.related.all()] == [shop]
    assert list(messages_for_content(order)) == [message]
    assert list(messages_for_content(shop)) == [message]
    assert list(messages_for_user(ann)) == [message] == list(ann.notifications.all())
    assert list(messages_for_content(boss)) == []


def is_still_unpaid(message) -> bool:
    return message.extra.get("paid") is not True


def test_check_validity_cancels_messages_no_longer_valid(channel):
    event = channel.templates.get().event
    event.check_validity = "tests.campaigns.outbox.test_triggers.is_still_unpaid"
    event.full_clean()
    event.save()
    unpaid = notify("order-shipped", ANN, CONTEXT, extra={"paid": False})
    paid = notify("order-shipped", {"email": "bob@example.com"}, CONTEXT, extra={"paid": True})
    send(unpaid.messages + paid.messages)
    rows = list(Message.objects.order_by("id").values_list("status", "status_reason"))
    assert rows == [("sent", ""), ("cancelled", "no longer valid")]
    assert [o.address for o in locmem.outbox] == ["ann@example.com"]


def test_opt_out_after_scheduling_cancels_at_dispatch(channel):
    result = notify("order-shipped", [ANN, {"email": "bob@example.com"}], CONTEXT)
    OptOut.objects.create(address="ANN@example.com", channel=channel)
    send(result)
    rows = list(Message.objects.order_by("id").values_list("address", "status", "status_reason"))
    assert rows == [("ann@example.com", "cancelled", "opted out"), ("bob@example.com", "sent", "")]


@pytest.mark.parametrize("n", [5, 100])
def test_rechecks_keep_dispatch_queries_pinned(n, channel, django_assert_num_queries):
    """check_validity runs per message in Python: the batch keeps its pinned queries (the
    claim, the recheck of users and opt-outs, the results)."""
    event = channel.templates.get().event
    event.check_validity = "tests.campaigns.outbox.test_triggers.is_still_unpaid"
    event.save()
    ids = [
        m.pk
        for m in notify(
            "order-shipped",
            [{"email": f"r{i}@x.io"} for i in range(n)],
            CONTEXT,
            trigger="trigger_once",
        ).messages
    ]
    catalog_settled()
    catalog()
    with django_assert_num_queries(3):
        summary = message_dispatch(message_ids=ids)
    assert summary.claimed == n


@pytest.mark.parametrize(("n", "queries"), [(1, 6), (300, 7)])
def test_once_behaviours_cost_notify_pinned_queries(n, queries, channel, django_assert_num_queries):
    """A once-behaviour needs a transaction (two statements for it here: a savepoint in a
    test), the advisory locks of its keys and the read of the rows that block them, besides
    the read about the recipients and the write (a COPY above 50 rows, its ids read first)."""
    catalog_settled()
    catalog()
    people = [{"email": f"q{n}-{i}@x.io"} for i in range(n)]
    with django_assert_num_queries(queries):
        result = notify("order-shipped", people, CONTEXT, trigger="send_once")
    assert len(result.messages) == n


def test_illegal_transitions_raise(channel):
    (message,) = notify("order-shipped", ANN, CONTEXT).messages
    send([message])
    message.refresh_from_db()
    with pytest.raises(IllegalTransition, match="a sent message cannot become queued"):
        message_state(message, to="queued")
    (other,) = notify("order-shipped", ANN, CONTEXT).messages
    message_state(other, to="cancelled", status_reason="operator")
    other.refresh_from_db()
    assert (other.status, other.status_reason) == ("cancelled", "operator")


def test_retry_failed_requeues_recent_failures_only(channel):
    old, recent, sent = (notify("order-shipped", ANN, CONTEXT).messages[0] for _ in range(3))
    Message.objects.filter(pk__in=[old.pk, recent.pk]).update(status="failed", attempts=5)
    Message.objects.filter(pk=sent.pk).update(status="sent")
    Message.objects.filter(pk=old.pk).update(updated_at=timezone.now() - dt.timedelta(days=9))
    call_command("retry_failed", "--since", "8d", stdout=open("/dev/null", "w"))  # noqa: SIM115
    rows = dict(Message.objects.values_list("pk", "status"))
    assert rows == {old.pk: "failed", recent.pk: "queued", sent.pk: "sent"}
    assert Message.objects.get(pk=recent.pk).attempts == 0


def test_send_template_by_slug(channel):
    template = channel.templates.get()
    template.slug = "receipt"
    template.save()
    (message,) = send_template(
        {"email": "ann@example.com", "language": "de"}, "receipt", CONTEXT
    ).messages
    assert (message.template_id, message.language) == (template.pk, "en")
    with pytest.raises(UnknownTemplate, match="'nope'"):
        send_template(ANN, "nope", CONTEXT)


def test_per_channel_backoff(channel):
    channel.retry_delay, channel.retry_backoff = 10, 3.0
    assert retry_delay(attempts=1, channel=channel, retry_after=None) == 10
    assert retry_delay(attempts=3, channel=channel, retry_after=None) == 90
    assert retry_delay(attempts=1, channel=channel, retry_after=120) == 120


def test_max_attempts_per_call(channel):
    (message,) = notify("order-shipped", ANN, CONTEXT, max_attempts=9).messages
    assert message.max_attempts == 9


def test_admin_actions_requeue_and_cancel(channel, client, django_user_model):
    from django.contrib.auth.models import Permission

    failed, pending = (notify("order-shipped", ANN, CONTEXT).messages[0] for _ in range(2))
    Message.objects.filter(pk=failed.pk).update(status="failed")
    viewer = django_user_model.objects.create_user("viewer", "v@x.io", "pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_message"))
    client.force_login(viewer)
    url = "/admin/campaigns/message/"
    data = {"action": "requeue_selected", "_selected_action": [failed.pk, pending.pk]}
    client.post(url, {**data, "confirm": "yes"})
    assert Message.objects.get(pk=failed.pk).status == "failed"  # no permission: no change

    viewer.user_permissions.add(Permission.objects.get(codename="change_message"))
    page = client.post(url, data)  # first the confirmation, nothing changed yet
    assert page.status_code == 200
    assert 'data-eligible="1"' in page.content.decode()
    assert Message.objects.get(pk=failed.pk).status == "failed"
    client.post(url, {**data, "confirm": "yes"})
    assert Message.objects.get(pk=failed.pk).status == "queued"
    cancel = {"action": "cancel_selected", "_selected_action": [pending.pk], "confirm": "yes"}
    client.post(url, cancel)
    assert Message.objects.get(pk=pending.pk).status_reason == "cancelled by viewer"


def test_mandatory_events_ignore_opt_outs(channel):
    event = channel.templates.get().event
    event.mandatory = True
    event.save(update_fields=["mandatory"])
    OptOut.objects.create(address="ann@example.com")  # "everything"
    (message,) = notify("order-shipped", ANN, CONTEXT).messages
    OptOut.objects.create(address="ann@example.com", channel=channel)
    send([message])
    assert statuses() == ["sent"]


def test_inbox_messages_stay_when_the_event_deletes_after_processing(db, django_user_model):
    inbox = factories.ChannelFactory(key="inbox-test", backend="inbox")
    template = factories.TemplateFactory(channel=inbox, event__key="order-shipped")
    template.event.delete_after_processing = True
    template.event.save(update_fields=["delete_after_processing"])
    ann = django_user_model.objects.create_user("ann", "ann@example.com")
    send(notify("order-shipped", ann, CONTEXT, channels=["inbox-test"]))
    assert statuses() == ["sent"]
