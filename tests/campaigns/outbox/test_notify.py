"""notify(): validation, skips with reasons, language fallback, opt-outs, and its query cost."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
from django.utils import timezone

from campaigns.api import (
    InvalidContext,
    InvalidRecipient,
    MissingVariables,
    UnknownChannel,
    UnknownEvent,
    notify,
)
from campaigns.models import Message, OptOut
from campaigns.outbox.catalog import catalog, catalog_settled
from campaigns.outbox.dispatch import message_dispatch
from campaigns.outbox.transitions import messages_claim
from channels.backends import locmem
from tests import factories

CONTEXT = {"order_id": "A-1"}


@pytest.fixture
def setup(db):
    channel = factories.memory_channel()
    template = factories.TemplateFactory(channel=channel, event__key="order-shipped")
    return template.event, channel


# --- bad input: a named error, and nothing written -------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (
            lambda: notify("no-such-event", {"email": "a@x.io"}, CONTEXT),
            UnknownEvent,
            "'no-such-event' does not exist",
        ),
        (
            lambda: notify("order-shipped", {"email": "a@x.io"}, CONTEXT, channels=["fax"]),
            UnknownChannel,
            "'fax'",
        ),
        (
            lambda: notify("order-shipped", {"email": "a@x.io"}, {}),
            MissingVariables,
            "missing declared variable(s): order_id",
        ),
        (
            lambda: notify("order-shipped", {"email": "a@x.io"}, {"order_id": object()}),
            InvalidContext,
            "context value order_id is a builtins.object",
        ),
        (
            lambda: notify(
                "order-shipped",
                {"email": "a@x.io"},
                {"order_id": "1", "items": [{"price": {1, 2}}]},
            ),
            InvalidContext,
            "items[0].price is a builtins.set",
        ),
        (
            lambda: notify("order-shipped", {"email": "a@x.io"}, {"order_id": float("nan")}),
            InvalidContext,
            "NaN",
        ),
        (
            lambda: notify("order-shipped", [{"email": "a@x.io"}, 42], CONTEXT),
            InvalidRecipient,
            "recipient #2: expected a mapping or a user, got int",
        ),
        (
            lambda: notify(
                "order-shipped", [{"email": "a@x.io"}, {"email": "not-an-email"}], CONTEXT
            ),
            InvalidRecipient,
            "recipient #2: memory: 'not-an-email' is not a valid email address",
        ),
        (
            lambda: notify("order-shipped", {"email": "a@x.io", "user_id": 999999}, CONTEXT),
            InvalidRecipient,
            "no user with id 999999",
        ),
        (
            lambda: notify("order-shipped", {"email": "a@x.io", "user_id": "abc"}, CONTEXT),
            InvalidRecipient,
            "user_id 'abc' is not an id",
        ),
        (
            lambda: notify("order-shipped", "a@x.io", CONTEXT),
            InvalidRecipient,
            "recipients must be mappings or users",
        ),
        (
            lambda: notify(
                "order-shipped", {"email": "a@x.io"}, CONTEXT, scheduled_at=dt.datetime(2030, 1, 1)
            ),
            InvalidContext,
            "timezone-aware",
        ),
    ],
    ids=[
        "unknown-event",
        "unknown-channel",
        "missing-variable",
        "object-in-context",
        "nested-set",
        "nan",
        "recipient-not-mapping",
        "malformed-email",
        "unknown-user",
        "bad-user-id",
        "string-recipients",
        "naive-scheduled-at",
    ],
)
def test_bad_input_raises_a_named_error_and_writes_nothing(setup, call, error, words):
    with pytest.raises(error) as raised:
        call()
    assert words in str(raised.value)
    assert Message.objects.count() == 0


def test_inactive_event_is_refused(setup):
    event, _ = setup
    event.is_active = False
    event.save(update_fields=["is_active"])
    with pytest.raises(UnknownEvent, match="is inactive"):
        notify("order-shipped", {"email": "a@x.io"}, CONTEXT)
    assert Message.objects.count() == 0


def test_email_validation_uses_the_channel_backend(db):
    channel = factories.ChannelFactory(key="mail", backend="email")
    factories.TemplateFactory(channel=channel, event__key="order-shipped")
    with pytest.raises(InvalidRecipient, match="'x@' is not a valid email address"):
        notify("order-shipped", {"email": "x@"}, CONTEXT)
    result = notify(
        "order-shipped", [{"email": "x@"}, {"email": "ok@example.com"}], CONTEXT, skip_invalid=True
    )
    assert [m.address for m in result.messages] == ["ok@example.com"]
    assert [(s.channel, s.reason) for s in result.skipped] == [("mail", "invalid address")]


def test_context_is_stored_as_plain_json(setup):
    when = dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC)
    result = notify(
        "order-shipped",
        {"email": "a@x.io"},
        {"order_id": 7, "when": when, "total": decimal.Decimal("9.90")},
    )
    message = Message.objects.get(pk=result.messages[0].pk)
    assert message.context == {"order_id": 7, "when": "2026-11-22T09:30:00+00:00", "total": "9.90"}


# --- skips with reasons ----------------------------------------------------------------------


def test_skips_are_reported_with_reasons(setup, django_user_model):
    event, _ = setup
    inactive = django_user_model.objects.create_user("gone", "gone@example.com", is_active=False)
    OptOut.objects.create(address="Opted@Example.com", event=event)
    result = notify(
        "order-shipped",
        [
            {"phone": "+4915100000"},
            {"email": "opted@example.com"},
            {"user_id": inactive.pk},
            {"email": "ok@example.com"},
        ],
        CONTEXT,
    )
    assert [m.address for m in result.messages] == ["ok@example.com"]
    assert [(s.channel, s.reason) for s in result.skipped] == [
        ("memory", "no address"),
        ("memory", "inactive user"),
        ("memory", "opted out"),
    ]
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    ("scope", "skipped"),
    [
        ("all", True),
        ("channel", True),
        ("event", True),
        ("event_channel", True),
        ("other-event", False),
        ("other-channel", False),
    ],
)
def test_opt_out_scopes(setup, django_user_model, scope, skipped):
    event, channel = setup
    user = django_user_model.objects.create_user("ann", "ann@example.com")
    other_event = factories.EventFactory(key="other")
    other_channel = factories.ChannelFactory(key="other-channel")
    kwargs = {
        "all": {},
        "channel": {"channel": channel},
        "event": {"event": event},
        "event_channel": {"event": event, "channel": channel},
        "other-event": {"event": other_event},
        "other-channel": {"channel": other_channel},
    }[scope]
    OptOut.objects.create(user=user, **kwargs)
    result = notify("order-shipped", user, CONTEXT)
    assert (len(result.messages) == 0) is skipped
    assert [s.reason for s in result.skipped] == (["opted out"] if skipped else [])


def test_user_objects_are_recipients(setup, django_user_model):
    user = django_user_model.objects.create_user("ann", "ann@example.com", first_name="Ann")
    (message,) = notify("order-shipped", user, CONTEXT).messages
    assert (message.address, message.user_id) == ("ann@example.com", user.pk)
    assert message.recipient["name"] == "Ann"


def test_user_id_recipient_gets_the_users_email(setup, django_user_model):
    user = django_user_model.objects.create_user("bob", "bob@example.com")
    (message,) = notify("order-shipped", {"user_id": user.pk}, CONTEXT).messages
    assert message.address == "bob@example.com"


def test_a_user_id_recipient_is_named_like_the_user_object(setup, django_user_model):
    """Full name, else the username; a name given with the id wins."""
    ann = django_user_model.objects.create_user("ann", "a@x.io", first_name="Ann", last_name="Lee")
    bob = django_user_model.objects.create_user("bob", "bob@x.io")
    people = [{"user_id": ann.pk}, {"user_id": bob.pk}, {"user_id": bob.pk, "name": "Robert"}]
    result = notify("order-shipped", people, CONTEXT, channels=["memory"])
    assert [m.recipient["name"] for m in result.messages] == ["Ann Lee", "bob", "Robert"]
    message_dispatch(message_ids=[m.pk for m in result.messages])
    assert [m.text for m in locmem.outbox] == [
        "Hello Ann Lee, order A-1 is on its way.",
        "Hello bob, order A-1 is on its way.",
        "Hello Robert, order A-1 is on its way.",
    ]


# --- languages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("languages", "default", "asked", "chosen"),
    [
        (["en", "pt-br", "pt"], "", "pt-BR", "pt-br"),
        (["en", "pt"], "", "pt-br", "pt"),
        (["en", "fr"], "fr", "pt-br", "fr"),
        (["en"], "", "pt-br", "en"),
        (["en", "de"], "", None, "en"),
    ],
)
def test_language_fallback(db, languages, default, asked, chosen):
    channel = factories.memory_channel()
    event = factories.EventFactory(key="order-shipped", default_language=default)
    for language in languages:
        factories.TemplateFactory(event=event, channel=channel, language=language)
    (message,) = notify("order-shipped", {"email": "a@x.io", "language": asked}, CONTEXT).messages
    assert message.language == chosen
    assert message.template.language == chosen
    assert message.template_key == f"order-shipped/memory/{chosen}"


def test_no_template_in_any_fallback_language_is_a_skip(db):
    channel = factories.memory_channel()
    factories.TemplateFactory(channel=channel, event__key="order-shipped", language="ja")
    result = notify("order-shipped", {"email": "a@x.io", "language": "de"}, CONTEXT)
    assert result.messages == []
    assert [s.reason for s in result.skipped] == ["no template"]


def test_channels_default_to_those_with_templates(setup):
    factories.ChannelFactory(key="unused")
    result = notify("order-shipped", {"email": "a@x.io"}, CONTEXT)
    assert [m.channel.key for m in result.messages] == ["memory"]


def test_scheduled_at_in_the_past_means_now(setup):
    past = timezone.now() - dt.timedelta(days=1)
    (message,) = notify("order-shipped", {"email": "a@x.io"}, CONTEXT, scheduled_at=past).messages
    assert message.status == "queued"


# --- cost: the number of queries does not grow with the batch ---------------------------------


def _recipients(n: int) -> list[dict]:
    return [{"email": f"r{i}@example.com", "name": f"R{i}", "user_id": None} for i in range(n)]


#: notify()'s queries: one read of all it must know about its recipients (their users and
#: addresses, opt-outs, addresses a provider called dead), and one write. Above
#: INSERT_ROWS_MAX rows the write is a COPY, whose ids are read from the sequence first.
NOTIFY_QUERIES = {1: 2, 500: 3}
#: With a recipient skipped, its decision (the decision trail) is written too, in one
#: transaction with the messages: its INSERT, and the transaction's savepoint and release.
SKIP_QUERIES = 3
#: A dispatch batch's queries, for 10 messages as for 200: the claim, the recheck (users still
#: active, opt-outs since), and the results. Events, channels, templates and windows come from
#: the catalog; a first try that was sent writes no attempt row.
DISPATCH_QUERIES = 3


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("n", [1, 500])
def test_notify_query_count_is_pinned(n, skip, setup, django_user_model, django_assert_num_queries):
    users = [django_user_model.objects.create_user(f"u{i}", f"u{i}@example.com") for i in range(3)]
    OptOut.objects.create(address="r0@example.com" if skip else "nobody@example.com")
    people = _recipients(n) + [{"user_id": u.pk} for u in users]
    catalog_settled()  # as if the setup had committed: the catalog is read, then kept
    notify("order-shipped", {"email": "warm@example.com"}, CONTEXT)  # read and kept
    with django_assert_num_queries(NOTIFY_QUERIES[n] + (SKIP_QUERIES if skip else 0)):
        result = notify("order-shipped", people, CONTEXT)
    assert len(result.messages) == n + 3 - skip  # r0 opted out
    assert [s.reason for s in result.skipped] == (["opted out"] if skip else [])
    assert {m.user_id for m in result.messages} >= {u.pk for u in users}


@pytest.mark.parametrize("n", [10, 200])
def test_dispatch_query_count_is_pinned(n, setup, django_assert_num_queries):
    ids = [m.pk for m in notify("order-shipped", _recipients(n), CONTEXT).messages]
    catalog_settled()
    catalog()  # read once, then kept
    locmem.outbox.clear()
    with django_assert_num_queries(DISPATCH_QUERIES):
        summary = message_dispatch(message_ids=ids)
    assert summary.as_dict() == {"claimed": n, "sent": n}
    assert len(locmem.outbox) == n
    assert set(Message.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"sent"}


def test_dispatch_checks_users_still_active_in_the_same_queries_whatever_the_batch(
    setup, django_user_model, django_assert_num_queries
):
    """Whether a batch's users are still active is read with its opt-outs, in the pinned
    queries; an inactive user's message is cancelled, not sent."""
    users = [django_user_model.objects.create_user(f"d{i}", f"d{i}@x.io") for i in range(200)]
    catalog_settled()
    catalog()  # read once, then kept
    for n in (10, 200):
        people = [{"user_id": u.pk} for u in users[:n]]
        ids = [m.pk for m in notify("order-shipped", people, CONTEXT).messages]
        django_user_model.objects.filter(pk=users[0].pk).update(is_active=False)
        locmem.outbox.clear()
        # The cancelled message logs its attempt: results and log in one transaction.
        # The transaction around results and log, and the log row's INSERT: three more.
        with django_assert_num_queries(DISPATCH_QUERIES + 3):
            summary = message_dispatch(message_ids=ids)
        django_user_model.objects.filter(pk=users[0].pk).update(is_active=True)
        assert summary.as_dict() == {"claimed": n, "sent": n - 1, "cancelled": 1}
        assert len(locmem.outbox) == n - 1
        assert users[0].email not in {m.address for m in locmem.outbox}


# --- how a planned message is built ------------------------------------------------------------


def test_a_planned_message_is_the_row_read_back(setup, django_assert_num_queries):
    """notify() builds its Message objects without ``Model.__init__``: each is what the
    database then holds, field for field, and acts as a saved model instance."""
    event, channel = setup
    result = notify("order-shipped", [{"email": "a@example.com", "name": "Ann"}], CONTEXT, tag="t1")
    (planned,) = result.messages
    stored = Message.objects.get(pk=planned.pk)
    for field in Message._meta.concrete_fields:
        assert getattr(planned, field.attname) == getattr(stored, field.attname), field.name
    with django_assert_num_queries(0):  # cached on it
        assert planned.event == event and planned.channel == channel
    assert not planned._state.adding
    planned.refresh_from_db()
    assert planned.status == stored.status


def test_a_claimed_message_is_the_row_as_the_orm_reads_it(setup):
    """The claim builds its Message objects without ``Model.__init__`` too: each is what the
    ORM reads after the claim, field for field, a saved instance that saves; the messages of
    one call share one parsed context."""
    people = [{"email": "a@example.com", "name": "Ann"}, {"email": "b@example.com"}]
    ids = [m.pk for m in notify("order-shipped", people, CONTEXT, tag="t1").messages]
    now = timezone.now()
    claimed = messages_claim(ids, now=now, lease_until=now + dt.timedelta(minutes=5))
    assert [m.pk for m in claimed] == sorted(ids)
    for message in claimed:
        stored = Message.objects.get(pk=message.pk)
        for field in Message._meta.concrete_fields:
            assert getattr(message, field.attname) == getattr(stored, field.attname), field
        assert (message.status, message.attempts) == ("sending", 1)
        assert not message._state.adding and message._state.db == "default"
    assert claimed[0].context == CONTEXT and claimed[0].context is claimed[1].context
    assert claimed[0].recipient is not claimed[1].recipient
    claimed[0].subject = "Saved"
    claimed[0].save(update_fields=["subject"])
    assert Message.objects.get(pk=claimed[0].pk).subject == "Saved"


def test_message_has_no_init_signal_receivers(db):
    """The planner's and the claim's shortcut past ``Model.__init__`` skips pre_init and
    post_init: should a receiver for Message ever be connected, both must build messages
    through ``__init__`` again."""
    from django.db.models import signals

    assert not signals.pre_init.has_listeners(Message)
    assert not signals.post_init.has_listeners(Message)
