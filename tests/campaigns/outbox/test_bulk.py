"""Rows written in bulk (``rows_insert``): what PostgreSQL stores is what the objects held,
whichever way they went in (an INSERT for a few rows, COPY text built here for more)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest
from django.db import connection

from campaigns.models import Decision, Message, MessageStatus
from campaigns.models.events import Trigger
from campaigns.outbox.bulk import INSERT_ROWS_MAX, _copy_column, rows_insert
from tests import factories

pytestmark = pytest.mark.django_db

HOSTILE_TEXT = [
    "plain",
    "tab\there",
    "new\nline and\r\nCRLF",
    "back\\slash \\N \\t \\\\",
    "\\N",
    "",
    "emoji 📨 and accents éà and RTL שלום",
    "quote ' double \" and a \x0b vertical tab, \x0c form feed, \x08 backspace",
    "x" * 2000,
]


def _objects(event, channel, count: int) -> list[Message]:
    base = dt.datetime(2026, 12, 1, 5, 0, 0, 123456, tzinfo=dt.UTC)
    objects = []
    for number in range(count):
        text = HOSTILE_TEXT[number % len(HOSTILE_TEXT)]
        objects.append(
            Message(
                event=event,
                channel=channel,
                address=f"{number}-{text[:40]}@example.com",
                template_key=text[:300],
                language="en" if number % 2 else "",
                recipient={
                    "name": text,
                    "n": number,
                    "nested": {"list": [1, 2.5, None, True, text]},
                    "path": "C:\\dir\\file",
                },
                context={"shared": "same for all", "quote": '"\\'},
                subject=text[:1000],
                text=text,
                status=MessageStatus.QUEUED if number % 3 else "scheduled",
                scheduled_at=None if number % 4 else base + dt.timedelta(minutes=number),
                next_attempt_at=base,
                max_attempts=number % 7,
                extra={} if number % 5 else {"k": text},
                tag="" if number % 2 else "tag\twith tab",
                user_id=None,
            )
        )
    return objects


@pytest.mark.parametrize("count", [3, INSERT_ROWS_MAX + 1, 240])
def test_rows_read_back_as_they_were_written(count):
    event = factories.EventFactory(key="bulk")
    channel = factories.ChannelFactory(key="bulk-mail")
    objects = _objects(event, channel, count)
    expected = [
        {
            f.attname: getattr(o, f.attname)
            for f in Message._meta.concrete_fields
            if f.attname not in ("id", "created_at", "updated_at")
        }
        for o in objects
    ]
    before = dt.datetime.now(dt.UTC)
    written = rows_insert(Message, objects)
    assert all(o.pk for o in written) and len({o.pk for o in written}) == count
    stored = {m.pk: m for m in Message.objects.filter(pk__in=[o.pk for o in written])}
    assert len(stored) == count
    for obj, values in zip(written, expected, strict=True):
        row = stored[obj.pk]
        for name, value in values.items():
            got = getattr(row, name)
            if isinstance(value, str) and not isinstance(got, str):
                got = str(got)
            assert got == value, (name, obj.pk)
        assert row.created_at == obj.created_at and row.created_at >= before
        assert row.updated_at == row.created_at


def test_rows_without_ids_go_in_too():
    """``ids=False`` (the decision log): one COPY, the ids left to the sequence."""
    event = factories.EventFactory(key="bulk")
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    decisions = [
        Decision(
            created_at=at + dt.timedelta(seconds=n),
            event=event,
            channel="mail",
            reason="opted out",
            address=HOSTILE_TEXT[n % len(HOSTILE_TEXT)][:2048],
            call="" if n % 2 else "app.views:signup:42",
        )
        for n in range(INSERT_ROWS_MAX + 10)
    ]
    rows_insert(Decision, decisions, ids=False)
    stored = list(Decision.objects.order_by("created_at"))
    assert [(d.address, d.call, d.created_at) for d in stored] == [
        (d.address, d.call, d.created_at) for d in decisions
    ]


def test_a_uuid_column_mixing_given_and_default_values():
    event = factories.EventFactory(key="bulk")
    channel = factories.ChannelFactory(key="bulk-mail")
    objects = _objects(event, channel, INSERT_ROWS_MAX + 1)
    given = uuid.UUID("01234567-89ab-7def-8123-456789abcdef")
    objects[7].uuid = given
    rows_insert(Message, objects)
    assert Message.objects.get(pk=objects[7].pk).uuid == given


def test_columns_of_every_type_go_through_copy_text():
    """The conversions of ``copy_text`` for the types the models do not write today (a
    float, bytes, a decimal, a date, a time, a bool) and a column mixing a str with a
    choice, through a real COPY into a scratch table."""
    columns = {
        "f": ("float8", [1.5, None, -0.1, 1e300]),
        "b": ("bytea", [b"\x00\x01tab\t", None, b"", b"\\"]),
        "d": ("numeric", [decimal.Decimal("1.10"), decimal.Decimal("-3"), None, None]),
        "dd": ("date", [dt.date(2026, 12, 1), None, dt.date(1, 1, 1), dt.date(9999, 12, 31)]),
        "t": ("time", [dt.time(5, 0, 0, 1), None, dt.time(0, 0), dt.time(23, 59, 59)]),
        "flag": ("boolean", [True, False, None, True]),
        "s": ("text", ["plain", Trigger.SEND_ONCE, "tab\there", None]),
    }
    texts = {name: _copy_column(values, is_json=False) for name, (_, values) in columns.items()}
    lines = "".join("\t".join(texts[n][row] for n in columns) + "\n" for row in range(4))
    with connection.cursor() as cursor:
        definition = ", ".join(f"{name} {kind}" for name, (kind, _) in columns.items())
        cursor.execute(f"CREATE TEMPORARY TABLE copy_types (n serial, {definition})")
        with cursor.cursor.copy(f"COPY copy_types ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(lines)
        cursor.execute(f"SELECT {', '.join(columns)} FROM copy_types ORDER BY n")  # noqa: S608
        rows = cursor.fetchall()
        cursor.execute("DROP TABLE copy_types")
    for index, name in enumerate(columns):
        stored = [
            bytes(row[index]) if isinstance(row[index], memoryview) else row[index] for row in rows
        ]
        assert stored == [str(v) if isinstance(v, Trigger) else v for v in columns[name][1]], name


def test_equal_values_written_differently_keep_their_own_text():
    """A column is written once only when its values are written alike: JSON's ``true``
    beside ``1`` (equal in Python), or ``1.0``, stay what each row held."""
    event = factories.EventFactory(key="bulk")
    channel = factories.ChannelFactory(key="bulk-mail")
    objects = _objects(event, channel, INSERT_ROWS_MAX + 3)
    shapes = [{"flag": 1}, {"flag": True}, {"flag": 1.0}]
    for number, obj in enumerate(objects):
        obj.extra = shapes[number % 3]
        obj.context = {"n": True} if number % 2 else {"n": 1}
    rows_insert(Message, objects)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extra::text, context::text FROM campaigns_message WHERE id = ANY(%s) "
            "ORDER BY id",
            [[o.pk for o in objects]],
        )
        stored = cursor.fetchall()
    assert [row[0] for row in stored[:3]] == ['{"flag": 1}', '{"flag": true}', '{"flag": 1.0}']
    assert [row[1] for row in stored[:2]] == ['{"n": 1}', '{"n": true}']
