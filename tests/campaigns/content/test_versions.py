"""A template's versions: publishing, what a message keeps (scheduled, retried, sent again),
rolling back, comparing, a campaign's pinned versions, layouts and partials published into
templates, and the migration that made every template its first version."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.api import notify
from campaigns.broadcast.fanout import campaign_launch, campaign_schedule, chunk_fan_out
from campaigns.content.layouts import layout_publish, layout_templates
from campaigns.content.partials import partial_republish, partial_templates
from campaigns.content.versions import (
    PublishError,
    template_publish,
    template_rollback,
    versions_diff,
)
from campaigns.models import (
    Audience,
    Campaign,
    CampaignChunk,
    Contact,
    Layout,
    Message,
    Partial,
    TemplateVersion,
)
from campaigns.outbox.actions import messages_requeue
from campaigns.outbox.dispatch import message_dispatch
from campaigns.outbox.sweep import sweep
from channels.backends import locmem
from tests import factories

CONTEXT = {"order_id": "A-1"}


@pytest.fixture
def template(db):
    return factories.TemplateFactory(
        channel=factories.memory_channel(), event__key="order-shipped", subject="v1 {{ order_id }}"
    )


def edit(template, **fields):
    for name, value in fields.items():
        setattr(template, name, value)
    template.save()
    return template


def sent_subjects() -> list[str]:
    return [outgoing.subject for outgoing in locmem.outbox]


def test_saving_the_draft_changes_nothing_sent_publishing_does(template):
    edit(template, subject="v2 {{ order_id }}")
    (first,) = notify("order-shipped", {"email": "a@x.io"}, CONTEXT).messages
    version = template_publish(template=template, note="new subject")
    (second,) = notify("order-shipped", {"email": "b@x.io"}, CONTEXT).messages
    message_dispatch(message_ids=[first.pk, second.pk])

    assert (version.number, version.note) == (2, "new subject")
    assert sent_subjects() == ["v1 A-1", "v2 A-1"]
    assert [m.template_version.number for m in Message.objects.order_by("pk")] == [1, 2]


def test_a_scheduled_message_keeps_the_version_it_was_made_with(template):
    later = timezone.now() + dt.timedelta(hours=2)
    (scheduled,) = notify(
        "order-shipped", {"email": "a@x.io"}, CONTEXT, scheduled_at=later
    ).messages
    template_publish(template=edit(template, subject="v2 {{ order_id }}"))
    sweep(now=later + dt.timedelta(minutes=1))
    message_dispatch(message_ids=[scheduled.pk])
    assert sent_subjects() == ["v1 A-1"]


def test_a_retried_and_a_resent_message_keep_their_version(template, settings):
    (message,) = notify("order-shipped", {"email": "a@x.io"}, CONTEXT).messages
    Message.objects.filter(pk=message.pk).update(status="failed", next_attempt_at=None)
    template_publish(template=edit(template, subject="v2 {{ order_id }}"))
    messages_requeue(queryset=Message.objects.filter(pk=message.pk))  # "Send again"
    message_dispatch(message_ids=[message.pk])
    assert sent_subjects() == ["v1 A-1"]


def test_publishing_refuses_an_unchanged_draft_and_a_draft_that_breaks_the_channel(db):
    sms = factories.ChannelFactory(
        key="sms",
        backend="channels.backends.sms.TwilioSmsBackend",
        config={"account_sid": "AC1", "auth_token": "t", "from_number": "+15005550006"},
    )
    template = factories.TemplateFactory(channel=sms, subject="", text_body="Order {{ order_id }}")
    with pytest.raises(PublishError, match="nothing changed since v1"):
        template_publish(template=template)
    edit(template, text_body="x" * 1531)  # 11 GSM-7 segments of 153
    with pytest.raises(PublishError, match="11 SMS segments"):
        template_publish(template=template)
    edit(template, text_body="{% if %}")
    with pytest.raises(PublishError, match="text_body"):
        template_publish(template=template)
    assert template.versions.count() == 1


def test_publishing_keeps_only_the_fields_the_channel_uses(db):
    sms = factories.ChannelFactory(
        key="sms",
        backend="channels.backends.sms.TwilioSmsBackend",
        config={"account_sid": "AC1", "auth_token": "t", "from_number": "+15005550006"},
    )
    template = factories.TemplateFactory(channel=sms, published=False, html_body="<p>old</p>")
    version = template_publish(template=template)
    template.refresh_from_db()
    assert (version.subject, version.html_body, template.html_body) == ("", "", "")
    assert version.text_body == template.text_body != ""


def test_rolling_back_publishes_the_old_version_again_and_resets_the_draft(template):
    v1 = template.published
    template_publish(template=edit(template, subject="v2 {{ order_id }}", text_body="two"))
    v3 = template_rollback(template=template, version=v1)
    template.refresh_from_db()
    assert (v3.number, v3.note, v3.subject) == (3, "Rolled back to v1", "v1 {{ order_id }}")
    assert (template.published_id, template.subject) == (v3.pk, "v1 {{ order_id }}")
    assert list(template.versions.values_list("number", flat=True)) == [3, 2, 1]
    with pytest.raises(PublishError, match="v3 is the version published now"):
        template_rollback(template=template, version=v3)


def test_two_versions_are_compared_line_by_line(template):
    v1 = template.published
    v2 = template_publish(
        template=edit(template, text_body="Hello\nyour order {{ order_id }}\nBye")
    )
    diffs = {diff.label: diff.lines for diff in versions_diff(v1, v2)}
    assert set(diffs) == {"Text"}
    assert ("+", "your order {{ order_id }}") in diffs["Text"]
    assert ("-", "Hello {{ recipient.name }}, order {{ order_id }} is on its way.") in diffs["Text"]


def test_a_campaign_pins_the_versions_it_was_started_with(template, settings, committed):
    settings.NOTIFIER = {**settings.NOTIFIER, "CAMPAIGN_CHUNK": 10}
    audience = Audience.objects.create(name="Customers", kind="contacts")
    Contact.objects.create(audience=audience, email="c@x.io", name="C")
    campaign = Campaign.objects.create(
        name="Spring",
        event=template.event,
        audience=audience,
        context=CONTEXT,
        send_at=timezone.now() + dt.timedelta(hours=1),
    )
    campaign_schedule(campaign)
    assert campaign.template_versions == {str(template.pk): template.published_id}
    template_publish(template=edit(template, subject="v2 {{ order_id }}"))  # after the start
    Campaign.objects.filter(pk=campaign.pk).update(send_at=timezone.now())
    campaign_launch(campaign.pk)
    with committed():  # the chunk job sends what it wrote once it commits
        chunk_fan_out(CampaignChunk.objects.get(campaign=campaign).pk)
    (message,) = Message.objects.filter(campaign=campaign)
    assert message.template_version.number == 1
    assert sent_subjects() == ["v1 A-1"]


def test_publishing_a_layout_gives_its_templates_a_version_and_spares_planned_messages(db):
    mail = factories.memory_channel("mail")
    layout = Layout.objects.create(
        name="Brand", channel=mail, html_body="<div>HEAD {% block content %}{% endblock %}</div>"
    )
    layout_publish(layout=layout)
    template = factories.TemplateFactory(
        channel=mail, event__key="order-shipped", html_body="<p>{{ order_id }}</p>", layout=layout
    )
    draft_only = factories.TemplateFactory(
        channel=mail, event=template.event, language="de", layout=layout, published=False
    )
    assert {t.pk for t in layout_templates(layout)} == {template.pk, draft_only.pk}
    (planned,) = notify(
        "order-shipped",
        {"email": "a@x.io"},
        CONTEXT,
        scheduled_at=timezone.now() + dt.timedelta(hours=1),
    ).messages

    layout.html_body = "<div>NEW HEAD {% block content %}{% endblock %}</div>"
    layout.save()
    version, count = layout_publish(layout=layout, note="new logo")
    template.refresh_from_db()
    assert (version.number, count) == (2, 1)
    assert (template.published.number, template.published.layout_version_id) == (2, version.pk)
    assert template.published.note == "Layout Brand v2: new logo"
    assert not draft_only.versions.exists()

    (now,) = notify("order-shipped", {"email": "b@x.io"}, CONTEXT).messages
    Message.objects.filter(pk=planned.pk).update(next_attempt_at=timezone.now(), status="queued")
    message_dispatch(message_ids=[planned.pk, now.pk])
    assert sorted(o.html for o in locmem.outbox) == [
        "<div>HEAD <p>A-1</p></div>",
        "<div>NEW HEAD <p>A-1</p></div>",
    ]
    with pytest.raises(PublishError, match="nothing changed since v2"):
        layout_publish(layout=layout)


def test_a_layout_a_template_does_not_compile_in_is_refused_naming_it(db):
    mail = factories.memory_channel("mail")
    layout = Layout.objects.create(
        name="Brand", channel=mail, html_body="{% block content %}{% endblock %}"
    )
    layout_publish(layout=layout)
    factories.TemplateFactory(
        channel=mail, event__key="order-shipped", html_body="<p>x</p>", layout=layout
    )
    layout.html_body = "{% block content %}{% endblock %}{% include 'missing' %}"
    layout.save()
    with pytest.raises(PublishError, match="order-shipped/mail/en does not compile"):
        layout_publish(layout=layout)
    assert layout.versions.count() == 1


def test_a_partial_change_reaches_published_templates_only_when_published_into_them(db):
    mail = factories.memory_channel("mail")
    footer = Partial.objects.create(name="footer", body="Shop Ltd")
    template = factories.TemplateFactory(
        channel=mail, event__key="order-shipped", text_body='Hi.\n{% include "footer" %}'
    )
    assert template.published.partials == {"footer": "Shop Ltd"}
    footer.body = "Shop GmbH"
    footer.save()
    notify("order-shipped", {"email": "a@x.io"}, CONTEXT)
    assert partial_templates(footer) == [template]
    assert partial_republish(partial=footer) == 1
    notify("order-shipped", {"email": "b@x.io"}, CONTEXT)
    message_dispatch(message_ids=list(Message.objects.order_by("pk").values_list("pk", flat=True)))
    assert [o.text for o in locmem.outbox] == ["Hi.\nShop Ltd", "Hi.\nShop GmbH"]
    assert TemplateVersion.objects.filter(template=template).count() == 2


def test_a_draft_saved_from_an_older_copy_does_not_move_the_published_version_back(template):
    stale = type(template).objects.get(pk=template.pk)  # read before the publish
    template_publish(template=edit(template, subject="v2 {{ order_id }}"))
    stale.text_body = "edited in another tab"
    stale.save()
    template.refresh_from_db()
    assert (template.published.number, template.text_body) == (2, "edited in another tab")
