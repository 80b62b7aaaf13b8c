"""What a batch's messages share is rendered once (``SharedPieces``), and every message still
reads exactly what a whole render of its own gives."""

from __future__ import annotations

import pytest

from campaigns.api import notify
from campaigns.domain.composition import Sources
from campaigns.domain.rendering import (
    PERSONAL,
    SHARED,
    SharedPieces,
    TemplateError,
    compile_sources,
    template_render,
)
from campaigns.models import Message
from campaigns.outbox.dispatch import PERSONAL_NAMES, message_dispatch
from channels.backends import locmem
from tests import factories


class Person(dict):
    """A recipient as dispatch gives it: attribute-style fields (``recipient.name``)."""

    def __getattr__(self, name):
        return self[name]


#: Templates that mix shared and personal pieces in the ways a template author can: inside
#: loops and conditions, as filter arguments, in tags that set a name for later pieces.
TEMPLATES = {
    "plain": "Hello {{ recipient.name }}, order {{ order_id }} ({{ total }} €).",
    "loop": "{% for item in items %}{{ item.name }} x{{ item.qty }};{% endfor %} {{ recipient }}",
    "personal loop": "{% for item in items %}{{ recipient.name }}:{{ item.name }} {% endfor %}",
    "if": (
        "{% if recipient.vip %}VIP {% else %}Hi {% endif %}"
        "{% if order_id %}#{{ order_id }}{% endif %}"
    ),
    "with": "{% with n=recipient.name o=order_id %}{{ n }}/{{ o }}{% endwith %}|{{ order_id }}",
    "filter argument": "{{ nickname|default:recipient.name }} {{ order_id|default:'none' }}",
    "cycle as": "{% cycle 'odd' 'even' as parity %}{{ parity }} {{ recipient.name }} {{ parity }}",
    "cycle in loop": "{% for item in items %}{% cycle 'a' 'b' %}{{ item.name }}{% endfor %}",
    "firstof as": "{% firstof recipient.nickname recipient.name as who %}{{ order_id }} {{ who }}",
    "cycle as in a loop": (
        "{% for i in items %}{% cycle recipient.name 'x' as order_id %}{% endfor %}{{ order_id }}"
    ),
    "now as": "{% now 'Y' as year %}{{ recipient.name }} {{ year }}",
    "regroup": (
        "{% regroup items by qty as by_qty %}{% for g in by_qty %}{{ g.grouper }}:"
        "{% for i in g.list %}{{ i.name }}{% endfor %} {% endfor %}{{ recipient.name }}"
    ),
    "filter tag": (
        "{% filter upper %}{{ recipient.name }} {{ order_id }}{% endfilter %} {{ total }}"
    ),
    "escaping": "{% autoescape off %}{{ note }}{% endautoescape %} {{ note }} {{ recipient.name }}",
    "link": '<a href="{{ unsubscribe_url }}">{{ shop }}</a> {% if unsubscribe_url %}x{% endif %}',
    "digest": "{{ order_id }}{% for entry in digest.items %} {{ entry }}{% endfor %}",
    "linebreaks": "{{ address|linebreaksbr }} {{ address|upper }} {{ recipient.name|lower }}",
}

SHARED_A = {
    "order_id": "A-1",
    "total": "149,90",
    "items": [{"name": "Boots", "qty": 1}, {"name": "Socks", "qty": 2}, {"name": "Hat", "qty": 1}],
    "note": "<b>bold</b> & co",
    "shop": "Shop <&>",
    "address": "Erika\nMain St 5",
}
SHARED_B = {**SHARED_A, "order_id": "B-2", "items": [{"name": "Tent", "qty": 3}]}


def personal(number: int) -> dict:
    """What dispatch adds for one message: a recipient as a plain dict (the stored JSON; the
    fast path prints its strings) or a dict subclass (Django's render), with markup to
    escape and, every third, without a key the templates name."""
    fields = {"name": f'Person <{number}> & "co"', "vip": number % 2 == 0, "nickname": ""}
    if number % 3 == 2:
        del fields["nickname"]
    return {
        "recipient": dict(fields) if number % 2 else Person(fields),
        "unsubscribe_url": f"https://example.com/u/{number}/",
        "digest": {"items": [f"event {number}", f"event {number + 1}"]},
    }


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_message_reads_what_a_whole_render_gives(name):
    source = TEMPLATES[name]
    body = "" if '"' in source else f'{{"t": "{source}"}}'  # a JSON body, where it can be one
    compiled = compile_sources(
        Sources(subject=source, text=source, html=f"<p>{source}</p>", body=body)
    )
    pieces = SharedPieces(PERSONAL_NAMES)
    # Stored contexts as a batch holds them: equal ones (separate dicts), then another, then
    # the first again, so a kept piece must never leak into a message of another context.
    stored = [dict(SHARED_A), dict(SHARED_A), dict(SHARED_B), dict(SHARED_A), dict(SHARED_B)] * 2
    for number, shared in enumerate(stored):
        context = {**shared, **personal(number)}
        alone = outcome(template_render, compiled, context)
        batched = outcome(template_render, compiled, context, pieces=pieces, shared=shared)
        assert batched == alone, (name, number)


def outcome(render, *args, **kwargs):
    """A render's result, or the error it raised, as text (an upper-cased JSON body, say, is
    not JSON: the same error either way)."""
    try:
        return render(*args, **kwargs)
    except TemplateError as error:
        return f"TemplateError: {error}"


class Counted:
    """A context value that counts how often it was printed."""

    def __init__(self):
        self.prints = 0

    def __str__(self):
        self.prints += 1
        return "shared"


def test_a_shared_piece_is_rendered_once_for_equal_contexts_and_personal_ones_each_time():
    compiled = compile_sources(
        Sources(subject="s", text="{{ big }} / {{ recipient.name }}", html="<p>{{ big }}</p>")
    )
    big = Counted()
    shared = {"big": big}
    pieces = SharedPieces(PERSONAL_NAMES)
    texts = [
        template_render(
            compiled, {**shared, "recipient": Person(name=f"p{i}")}, pieces=pieces, shared=shared
        ).text
        for i in range(5)
    ]
    assert texts == [f"shared / p{i}" for i in range(5)]
    assert big.prints == 2  # once in the text, once in the HTML

    big.prints = 0
    for i in range(5):
        template_render(compiled, {**shared, "recipient": Person(name=f"p{i}")})
    assert big.prints == 10  # without pieces: every message renders everything


@pytest.mark.parametrize(
    "source",
    [
        "{{ items|random }}",  # another pick for each message
        "{% now 'U' %}",
        "{% cycle 'a' 'b' as c %}",  # sets a name for the pieces after it
        "{% regroup items by qty as g %}",
        "{% firstof order_id as x %}",
    ],
)
def test_tags_and_filters_that_are_not_a_function_of_the_shared_context_are_personal(source):
    compiled = compile_sources(Sources(subject="s", text=source))
    pieces = SharedPieces(PERSONAL_NAMES)
    assert pieces._plan(compiled.text) == (PERSONAL,)
    shared_only = compile_sources(Sources(subject="s", text="{{ order_id|upper }}"))
    assert pieces._plan(shared_only.text) == (SHARED,)


def test_a_batch_of_two_events_contexts_sends_each_person_their_own_message(db):
    """Through dispatch: one batch holding two notify() calls' messages, interleaved."""
    channel = factories.memory_channel()
    factories.TemplateFactory(
        channel=channel,
        event__key="order-shipped",
        subject="Order {{ order_id }}",
        text_body=(
            "Hello {{ recipient.name }}:{% for item in items %} {{ item.name }}{% endfor %}."
        ),
    )
    first = notify(
        "order-shipped",
        [{"email": f"a{i}@example.com", "name": f"A{i}"} for i in range(3)],
        {"order_id": "1", "items": [{"name": "Boots"}]},
    ).messages
    second = notify(
        "order-shipped",
        [{"email": f"b{i}@example.com", "name": f"B{i}"} for i in range(3)],
        {"order_id": "2", "items": [{"name": "Tent"}, {"name": "Stove"}]},
    ).messages
    ids = [m.pk for pair in zip(first, second, strict=True) for m in pair]
    summary = message_dispatch(message_ids=ids)
    assert summary.as_dict() == {"claimed": 6, "sent": 6}
    got = {m.address: (m.subject, m.text) for m in locmem.outbox}
    for i in range(3):
        assert got[f"a{i}@example.com"] == ("Order 1", f"Hello A{i}: Boots.")
        assert got[f"b{i}@example.com"] == ("Order 2", f"Hello B{i}: Tent Stove.")
    assert set(Message.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"sent"}


def test_a_personal_name_without_filters_is_printed_from_its_dicts_and_anything_else_by_django():
    compiled = compile_sources(
        Sources(subject="s", text="Hi {{ recipient.name }}{{ recipient.name|upper }}{% now 'Y' %}")
    )
    plan = SharedPieces(PERSONAL_NAMES)._plan(compiled.text)
    assert plan == (SHARED, ("recipient", "name"), PERSONAL, PERSONAL)
