"""notify() and send_template() under hostile input: every call either succeeds or raises a
NotifierError naming the argument and the problem, and a refused call writes nothing. The
cases operators and a fuzzer found, one by one, then a seeded fuzz of 2,000 calls."""

from __future__ import annotations

import datetime as dt
import decimal
import random
import uuid
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.api import (
    InvalidArgument,
    InvalidContext,
    InvalidRecipient,
    NotifierError,
    notify,
    send_template,
)
from campaigns.models import (
    AvailabilityWindow,
    Event,
    Message,
    MessageRelatedObject,
    NotifyRequest,
    Template,
)
from campaigns.outbox.catalog import catalog_settled
from tests import factories

CONTEXT = {"order_id": "A-1"}
ANN = {"email": "ann@example.com"}
UTC = dt.UTC


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
def world(db, django_user_model):
    channel = factories.memory_channel()
    template = factories.TemplateFactory(channel=channel, event__key="order-shipped")
    template.slug = "receipt"
    template.save(update_fields=["slug"])
    # Every day 00:00-23:00 in the recipient's timezone: every call computes a delivery time.
    AvailabilityWindow.objects.create(
        event=template.event, start_time=dt.time(0), end_time=dt.time(23)
    )
    user = django_user_model.objects.create_user("ann", "ann@example.com")
    return SimpleNamespace(
        channel=channel,
        template=template,
        event=template.event,
        user=user,
        group=Group.objects.create(name="customers"),
    )


def counts() -> tuple[int, int, int]:
    return (
        Message.objects.count(),
        MessageRelatedObject.objects.count(),
        NotifyRequest.objects.count(),
    )


# --- the cases found, each with its named error ---------------------------------------------


CASES = {
    # argument: (keyword arguments of notify(), error, words of the message)
    "nul-in-context-key": (
        {"context": {**CONTEXT, "a\x00b": 1}},
        InvalidContext,
        "context key 'a\\x00b' contains a NUL character (at position 1)",
    ),
    "nul-in-context-value": (
        {"context": {**CONTEXT, "items": [{"name": "x\x00"}]}},
        InvalidContext,
        "context value items[0].name contains a NUL character",
    ),
    "surrogate-in-context-value": (
        {"context": {"order_id": "\ud800"}},
        InvalidContext,
        "context value order_id contains a lone surrogate '\\ud800'",
    ),
    "inf-in-context": (
        {"context": {**CONTEXT, "total": float("inf")}},
        InvalidContext,
        "context value total is inf, which JSON cannot hold",
    ),
    "minus-inf-in-extra": (
        {"extra": {"score": float("-inf")}},
        InvalidArgument,
        "extra value score is -inf, which JSON cannot hold",
    ),
    "huge-int-in-context": (
        {"context": {**CONTEXT, "n": 10**5000}},
        InvalidContext,
        "context value n is an integer too large to store",
    ),
    "context-1000-deep": (
        {"context": {**CONTEXT, "deep": nested(1000)}},
        InvalidContext,
        "is nested deeper than 32 levels",
    ),
    "context-not-a-mapping": (
        {"context": ["order_id"]},
        InvalidContext,
        "context must be a mapping, got list",
    ),
    "nul-in-recipient-field": (
        {"recipients": [ANN, {"email": "b@example.com", "name": "B\x00"}]},
        InvalidRecipient,
        "recipient #2: name contains a NUL character (at position 1)",
    ),
    "surrogate-in-recipient-key": (
        {"recipients": {"email": "b@example.com", "\udfff": "x"}},
        InvalidRecipient,
        "recipient #1: key '\\udfff' contains a lone surrogate",
    ),
    "inf-in-recipient": (
        {"recipients": {"email": "b@example.com", "score": float("inf")}},
        InvalidRecipient,
        "recipient #1: score is inf, which JSON cannot hold",
    ),
    "recipient-1000-deep": (
        {"recipients": {"email": "b@example.com", "data": nested(1000)}},
        InvalidRecipient,
        "is nested deeper than 32 levels",
    ),
    "float-user-id": (
        {"recipients": {"user_id": 2.5}},
        InvalidRecipient,
        "recipient #1: user_id 2.5 is not an id",
    ),
    "huge-user-id": (
        {"recipients": {"user_id": 2**64}},
        InvalidRecipient,
        "is not an id",
    ),
    "address-too-long": (
        {"recipients": {"email": "a" * 3000}},
        InvalidRecipient,
        "the address is 3000 characters long; at most 2048 are stored",
    ),
    "nul-in-tag": ({"tag": "a\x00"}, InvalidArgument, "tag contains a NUL character"),
    "tag-too-long": (
        {"tag": "t" * 101},
        InvalidArgument,
        "tag is 101 characters long; at most 100 are stored",
    ),
    "tag-not-a-str": ({"tag": 7}, InvalidArgument, "tag must be a str, got int"),
    "surrogate-in-idempotency-key": (
        {"idempotency_key": "k\ud83d"},
        InvalidArgument,
        "idempotency_key contains a lone surrogate",
    ),
    "idempotency-key-too-long": (
        {"idempotency_key": "k" * 256},
        InvalidArgument,
        "idempotency_key is 256 characters long; at most 255 are stored",
    ),
    "idempotency-key-none": (
        {"idempotency_key": None},
        InvalidArgument,
        "idempotency_key must be a str, got NoneType",
    ),
    "max-attempts-negative": (
        {"max_attempts": -1},
        InvalidArgument,
        "max_attempts must be a whole number from 1 to 32767, got -1",
    ),
    "max-attempts-str": (
        {"max_attempts": "3"},
        InvalidArgument,
        "max_attempts must be a whole number from 1 to 32767, got '3'",
    ),
    "max-attempts-float": (
        {"max_attempts": 2.5},
        InvalidArgument,
        "max_attempts must be a whole number from 1 to 32767, got 2.5",
    ),
    "trigger-user-unknown-id": (
        {"trigger_user": 987654},
        InvalidArgument,
        "trigger_user 987654 is no user's id",
    ),
    "trigger-user-str": (
        {"trigger_user": "ann"},
        InvalidArgument,
        "trigger_user must be a user or a user id, got str",
    ),
    "scheduled-at-str": (
        {"scheduled_at": "2030-01-01T00:00:00Z"},
        InvalidArgument,
        "scheduled_at must be a timezone-aware datetime or None, got str",
    ),
    "scheduled-at-date": (
        {"scheduled_at": dt.date(2030, 1, 1)},
        InvalidArgument,
        "scheduled_at must be a timezone-aware datetime or None, got date",
    ),
    "scheduled-at-int": (
        {"scheduled_at": 1893456000},
        InvalidArgument,
        "scheduled_at must be a timezone-aware datetime or None, got int",
    ),
    "scheduled-at-naive": (
        {"scheduled_at": dt.datetime(2030, 1, 1)},
        InvalidArgument,
        "scheduled_at must be timezone-aware",
    ),
    "scheduled-at-year-9999-with-a-window": (
        {"scheduled_at": dt.datetime(9999, 12, 31, 23, tzinfo=UTC)},
        InvalidArgument,
        "scheduled_at 9999-12-31T23:00:00+00:00 is outside the years 2 to 9997",
    ),
    "extra-a-list": ({"extra": [1, 2]}, InvalidArgument, "extra must be a mapping or None"),
    "extra-with-a-set": (
        {"extra": {"ids": {1, 2}}},
        InvalidArgument,
        "extra value ids is a builtins.set, not plain data",
    ),
    "related-objects-a-str": (
        {"related_objects": "order"},
        InvalidArgument,
        "related_objects must be a list of saved model instances, got str",
    ),
    "related-objects-of-ints": (
        {"related_objects": [1]},
        InvalidArgument,
        "related_objects must be saved model instances, got 1",
    ),
    "related-object-unsaved": (
        {"related_objects": [Group(name="x")]},
        InvalidArgument,
        "related_objects has a Group that was never saved",
    ),
    "content-with-a-long-id": (
        {"content": Event(pk="e" * 65, key="x")},
        InvalidArgument,
        "content has a Event whose id 'eeee",
    ),
    "channels-an-int": (
        {"channels": 5},
        InvalidArgument,
        "channels must be None, a channel key or a list of keys, got 5",
    ),
    "channels-of-ints": ({"channels": [1]}, InvalidArgument, "channels must be None"),
    "strict-a-str": ({"strict": "no"}, InvalidArgument, "strict must be True or False, got 'no'"),
    "trigger-unknown": ({"trigger": "twice"}, InvalidArgument, "trigger 'twice' is unknown"),
    "event-an-int": (
        {"event": 5},
        InvalidArgument,
        "event must be an event key (a str) or an Event, got 5",
    ),
    "nul-in-event": ({"event": "order\x00"}, InvalidArgument, "event contains a NUL character"),
    "event-unsaved": ({"event": Event(key="x")}, InvalidArgument, "event is an Event that was"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_argument_is_refused_by_name_and_writes_nothing(world, case):
    kwargs, error, words = case
    call = {"event": "order-shipped", "recipients": ANN, "context": CONTEXT, **kwargs}
    before = counts()
    with pytest.raises(error) as raised:
        notify(call.pop("event"), call.pop("recipients"), call.pop("context"), **call)
    assert words in str(raised.value)
    assert counts() == before


def test_send_template_refuses_a_bad_slug_and_unknown_options(world):
    with pytest.raises(InvalidArgument, match="slug contains a NUL character"):
        send_template(ANN, "re\x00ceipt", CONTEXT)
    with pytest.raises(InvalidArgument, match="slug must be a str, got int"):
        send_template(ANN, 5, CONTEXT)
    with pytest.raises(InvalidArgument, match=r"template is not an option of send_template\(\)"):
        send_template(ANN, "receipt", CONTEXT, template=world.template)
    with pytest.raises(InvalidArgument, match="max_attempts must be a whole number"):
        send_template(ANN, "receipt", CONTEXT, max_attempts=0)
    assert counts() == (0, 0, 0)
    assert len(send_template(ANN, "receipt", CONTEXT, tag="ok").messages) == 1


def test_a_long_address_gets_a_dedupe_key_that_fits(world):
    """trigger_once keys hold the address: a long one is replaced by its digest."""
    address = "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".com"  # 312 characters
    first = notify("order-shipped", {"email": address}, CONTEXT, trigger="trigger_once")
    again = notify("order-shipped", {"email": address}, CONTEXT, trigger="trigger_once")
    (message,) = first.messages
    assert len(message.dedupe_key) <= 300 < len(address)
    assert again.messages == [] and [s.reason for s in again.skipped] == ["duplicate"]


def test_a_trigger_user_given_by_id_is_checked_with_the_recipients_users(world):
    """No query of its own when recipients carry user ids: the same query loads both."""
    catalog_settled()
    notify("order-shipped", ANN, CONTEXT)  # warm the catalog and other caches
    with CaptureQueriesContext(connection) as with_id:
        notify("order-shipped", {"user_id": world.user.pk}, CONTEXT, trigger_user=world.user.pk)
    with CaptureQueriesContext(connection) as without:
        notify("order-shipped", {"user_id": world.user.pk}, CONTEXT)
    assert len(with_id) == len(without)
    assert Message.objects.filter(trigger_user=world.user).count() == 1


def test_notify_query_count_is_unchanged_by_validation(world):
    """Validation reads nothing: a one-recipient call keeps its pinned 2 queries (the read
    about the recipient, the write), with this test's availability window."""
    catalog_settled()
    notify("order-shipped", ANN, CONTEXT)  # warm the catalog and other caches
    with CaptureQueriesContext(connection) as queries:
        notify(
            "order-shipped",
            {"email": "b@example.com", "name": "B", "tz": "Europe/Berlin"},
            {**CONTEXT, "items": [{"sku": "X", "price": decimal.Decimal("9.90")}]},
            tag="orders",
            extra={"order_pk": 42},
        )
    assert len(queries) == 2, [q["sql"] for q in queries]


# --- the fuzz --------------------------------------------------------------------------------

SEED = 20261130
CALLS = 2000

TEXTS = [
    "",
    "ok",
    "a\x00b",
    "\x00",
    "\ud800",
    "x\udfffy",
    "\ud83d\ude00",  # a surrogate pair in a Python str: two lone surrogates, not an emoji
    "😀",
    "é" * 10,
    "x" * 101,
    "x" * 300,
    "y" * 5000,
    " \t\n",
    "{{ recipient }}",
    "'; DROP TABLE campaigns_message; --",
    "\u202eevil",
    "%s%s",
]
VALUES = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2.5,
    float("inf"),
    float("-inf"),
    float("nan"),
    10**5000,
    2**63,
    "3",
    b"bytes",
    [],
    {},
    set(),
    (1, 2),
    object(),
    dt.date(2030, 1, 1),
    dt.time(9, 30),
    dt.datetime(2030, 1, 1),
    dt.datetime(2030, 1, 1, tzinfo=UTC),
    decimal.Decimal("NaN"),
    uuid.UUID(int=7),
    nested(40),
    nested(1000),
    [[[[[[]]]]]],
]


def fuzz_pools(rng: random.Random, world) -> dict:
    """For each argument, a function that draws a value for it: valid ones and hostile
    ones."""

    def any_value():
        return rng.choice(VALUES + TEXTS)

    def text():
        return rng.choice(TEXTS)

    def recipient():
        kind = rng.randrange(8)
        if kind == 0:
            return world.user
        base = {"email": f"r{rng.randrange(10**6)}@example.com"}
        if kind == 1:
            return base
        field = rng.choice(["email", "name", "tz", "language", "user_id", "phone", text()])
        return {**base, field: any_value()}

    def recipients():
        kind = rng.randrange(6)
        if kind == 0:
            return any_value()
        return [recipient() for _ in range(rng.randrange(1, 4))]

    def context():
        kind = rng.randrange(5)
        if kind == 0:
            return any_value()
        return {**CONTEXT, rng.choice([text(), "k", 5]): any_value()}

    models = [world.user, world.group, world.event, Group(name="unsaved"), Event(pk="e" * 70)]
    return {
        "event": lambda: rng.choice(["order-shipped", world.event, *TEXTS, *VALUES[:14]]),
        "recipients": recipients,
        "context": context,
        "channels": lambda: rng.choice([None, "memory", ["memory"], [], ["nope"], *VALUES]),
        "scheduled_at": lambda: rng.choice(
            [
                *VALUES,
                dt.datetime(9997, 12, 31, 23, tzinfo=UTC),
                dt.datetime(9999, 12, 31, 23, tzinfo=UTC),
                dt.datetime(1, 1, 1, tzinfo=UTC),
                dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-12))),
            ]
        ),
        "tag": lambda: rng.choice([*TEXTS, *VALUES]),
        "extra": lambda: rng.choice([None, {}, {"k": any_value()}, {text(): 1}, any_value()]),
        "content": lambda: rng.choice([None, *models, any_value()]),
        "related_objects": lambda: rng.choice(
            [[], [world.group], [rng.choice(models)], models, any_value(), [any_value()]]
        ),
        "trigger_user": lambda: rng.choice(
            [None, world.user, world.user.pk, 987654, Group(name="x"), *VALUES]
        ),
        "trigger": lambda: rng.choice(
            [None, "default", "send_once", "last_only", "trigger_once_per_content", *VALUES]
        ),
        "strict": lambda: rng.choice([True, False, *VALUES]),
        "idempotency_key": lambda: rng.choice([f"k{rng.randrange(10**9)}", *TEXTS, *VALUES]),
        "max_attempts": lambda: rng.choice([None, 1, 3, 32767, 32768, *VALUES]),
        "send_immediately": lambda: rng.choice([True, False, *VALUES]),
        "skip_invalid": lambda: rng.choice([True, False, *VALUES]),
        "template": lambda: rng.choice([None, world.template, Template(), *VALUES]),
        "slug": lambda: rng.choice(["receipt", *TEXTS, *VALUES]),
    }


#: The word a refusal's message holds when it is about each argument (most name themselves).
WORDS = {
    "recipients": ("recipient",),
    "channels": ("channel",),
    "idempotency_key": ("idempotency",),  # IdempotencyConflict: "idempotency key 'k' was …"
    "slug": ("slug",),
}


def test_fuzzed_calls_succeed_or_raise_a_named_notifier_error_writing_nothing(world):
    rng = random.Random(SEED)
    pools = fuzz_pools(rng, world)
    base = {"event": "order-shipped", "recipients": ANN, "context": CONTEXT}
    outcomes = {"ok": 0, "refused": 0}
    for number in range(CALLS):
        via_template = rng.random() < 0.2  # send_template(): a slug instead of an event
        # notify() has no template argument (send_template() refuses one by name).
        skip = ("event",) if via_template else ("slug", "template")
        mutated = rng.sample([name for name in pools if name not in skip], rng.randint(1, 3))
        call = {**base, "slug": "receipt", **{name: pools[name]() for name in mutated}}
        options = {k: v for k, v in call.items() if k in mutated and k not in (*base, "slug")}
        before = counts()
        try:
            if via_template:
                send_template(call["recipients"], call["slug"], call["context"], **options)
            else:
                notify(call["event"], call["recipients"], call["context"], **options)
        except NotifierError as error:
            message = str(error)
            words = [word for name in mutated for word in WORDS.get(name, (name,))]
            assert any(word in message for word in words), (
                number,
                mutated,
                message,
            )
            assert counts() == before, (number, mutated, message)
            outcomes["refused"] += 1
        except Exception as error:  # the point: no other error may escape
            pytest.fail(f"call {number} with {mutated} raised {type(error).__name__}: {error}")
        else:
            outcomes["ok"] += 1
    print(f"fuzzed notify(): {outcomes}")
    assert outcomes["ok"] > CALLS // 20 and outcomes["refused"] > CALLS // 2
