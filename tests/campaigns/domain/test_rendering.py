from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.template import Context, Template

from campaigns.api import notify
from campaigns.domain.composition import Sources
from campaigns.domain.rendering import (
    compile_sources,
    template_compile,
    template_render,
)
from campaigns.models import Message, TemplateVersion
from campaigns.outbox.dispatch import message_dispatch
from tests import factories


def test_text_is_not_escaped_and_html_is():
    compiled = compile_sources(
        Sources(subject="Re: {{ v }}", text="Text {{ v }}", html="<p>{{ v }}</p>")
    )
    rendered = template_render(compiled, {"v": "<script>alert(1)</script> & co"})
    assert rendered.subject == "Re: <script>alert(1)</script> & co"
    assert rendered.text == "Text <script>alert(1)</script> & co"
    assert rendered.html == "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</p>"


def test_unescaped_output_is_plain_text_that_any_page_escapes():
    """Django marks every render's output safe; the text engine's must not be, or a page
    printing the subject or text would print its markup as HTML."""
    compiled = compile_sources(Sources(subject="{{ v }}", text="{{ v }}", html="<p>{{ v }}</p>"))
    rendered = template_render(compiled, {"v": "<b>x</b>"})
    page = Template("{{ r.subject }}|{{ r.text }}|{{ r.html }}")
    assert page.render(Context({"r": rendered})) == (
        "&lt;b&gt;x&lt;/b&gt;|&lt;b&gt;x&lt;/b&gt;|<p>&lt;b&gt;x&lt;/b&gt;</p>"
    )


def test_subject_is_one_line():
    compiled = compile_sources(Sources(subject="Hello\n  {{ name }}\n"))
    assert template_render(compiled, {"name": "Ann"}).subject == "Hello Ann"


def test_mjml_compiles_once_per_template_version(db):
    template = factories.TemplateFactory(
        html_body="<mjml><mj-body><mj-text>{{ order_id }}</mj-text></mj-body></mjml>"
    )
    v1 = template.published
    first = template_compile(v1)
    assert template_compile(TemplateVersion.objects.get(pk=v1.pk)) is first  # cached by id
    html = template_render(first, {"order_id": "A-1"}).html
    assert html.startswith("<!doctype html>") and ">A-1</div>" in html  # compiled MJML
    template.subject = "Changed {{ order_id }}"
    template.save()
    v2 = factories.template_publish_as_is(template)
    second = template_compile(v2)
    assert second is not first and template_compile(v1) is first
    assert template_render(second, {"order_id": "A-1"}).subject == "Changed A-1"
    assert template_render(first, {"order_id": "A-1"}).subject == "Order A-1 shipped"


def test_syntax_errors_name_field_and_line(db):
    template = factories.TemplateFactory.build(
        event=factories.EventFactory(),
        channel=factories.memory_channel(),
        text_body="Hello\n{% if name %}\nno end",
    )
    with pytest.raises(ValidationError) as raised:
        template.clean()
    message = raised.value.message_dict["text_body"][0]
    assert "text_body:" in message and "endif" in message and "line 2" in message


def test_broken_mjml_is_refused(db):
    template = factories.TemplateFactory.build(
        event=factories.EventFactory(),
        channel=factories.memory_channel(),
        html_body="<mjml><mj-body><mj-sectio",
    )
    with pytest.raises(ValidationError) as raised:
        template.clean()
    assert raised.value.message_dict["html_body"][0].startswith("MJML:")


def test_a_message_that_cannot_render_is_broken_and_not_retried(db):
    channel = factories.memory_channel()
    # Published without the admin's checks: a syntax error only dispatch can find.
    factories.TemplateFactory(channel=channel, event__key="order-shipped", text_body="{% for %}")
    (message,) = notify("order-shipped", {"email": "a@example.com"}, {"order_id": "1"}).messages
    summary = message_dispatch(message_ids=[message.pk])
    message.refresh_from_db()
    assert summary.as_dict() == {"claimed": 1, "broken": 1}
    assert message.status == "broken"
    assert "TemplateError" in message.last_error and "for" in message.last_error
    assert message.next_attempt_at is None
    assert message_dispatch(message_ids=[message.pk]).claimed == 0


def test_a_deleted_template_breaks_its_messages_but_keeps_the_key(db):
    channel = factories.memory_channel()
    template = factories.TemplateFactory(channel=channel, event__key="order-shipped")
    (message,) = notify("order-shipped", {"email": "a@example.com"}, {"order_id": "1"}).messages
    template.delete()
    message_dispatch(message_ids=[message.pk])
    message = Message.objects.get(pk=message.pk)
    assert (message.status, message.template_key) == ("broken", "order-shipped/memory/en")
    assert "template order-shipped/memory/en was deleted" in message.last_error


def test_signals_are_sent_once_per_batch(db):
    from campaigns.signals import messages_failed, messages_sent, messages_succeeded

    channel = factories.memory_channel()
    factories.TemplateFactory(channel=channel, event__key="order-shipped")
    people = [{"email": f"p{i}@example.com"} for i in range(3)]
    ids = [m.pk for m in notify("order-shipped", people, {"order_id": "1"}).messages]
    Message.objects.filter(pk=ids[0]).update(template_version=None)  # this one will be broken
    calls = []

    def receiver(signal_name):
        def receive(sender, messages, **kwargs):
            calls.append((signal_name, sorted(m.pk for m in messages)))

        return receive

    receivers = {name: receiver(name) for name in ("sent", "succeeded", "failed")}
    messages_sent.connect(receivers["sent"])
    messages_succeeded.connect(receivers["succeeded"])
    messages_failed.connect(receivers["failed"])
    try:
        message_dispatch(message_ids=ids)
    finally:
        messages_sent.disconnect(receivers["sent"])
        messages_succeeded.disconnect(receivers["succeeded"])
        messages_failed.disconnect(receivers["failed"])
    assert calls == [("sent", ids), ("succeeded", ids[1:]), ("failed", ids[:1])]
