"""The template admin beyond the preview: each channel's own fields and limits, publishing,
versions, diffs and roll back over HTTP, layouts and partials, previews as a real recipient,
the translation status, event variables as rows, and who may change content (Marketing) and
who may only look and test (Support)."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.contrib.auth.models import Group

from campaigns.api import notify
from campaigns.content.layouts import layout_publish
from campaigns.models import Audience, Contact, Event, Layout, Message, Partial, Template
from tests import factories

TWILIO = {"account_sid": "AC1", "auth_token": "t", "from_number": "+15005550006"}


def login(client, django_user_model, role: str):
    user = django_user_model.objects.create_user(role.lower(), f"{role}@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


@pytest.fixture
def marketing(client, django_user_model, db):
    login(client, django_user_model, "Marketing")
    return client


@pytest.fixture
def channels(db):
    return {
        "sms": factories.ChannelFactory(
            key="sms", backend="channels.backends.sms.TwilioSmsBackend", config=TWILIO
        ),
        "push": factories.ChannelFactory(
            key="push", backend="channels.backends.expo.ExpoPushBackend", config={}
        ),
        "email": factories.ChannelFactory(
            key="email", backend="channels.backends.email.EmailBackend", config={"host": "smtp.x"}
        ),
        "hooks": factories.ChannelFactory(
            key="hooks",
            backend="channels.backends.webhook.WebhookBackend",
            config={"url": "https://hooks.example/n", "secret": "whsec-0123456789abcdef"},
        ),
    }


def field_names(html: str) -> set[str]:
    content = {"subject", "preheader", "text_body", "html_body", "link", "image", "json_body"}
    return {name for name in re.findall(r'name="([a-z_]+)"', html) if name in content}


def test_each_channel_gets_its_own_fields(marketing, channels):
    event = factories.EventFactory(key="order-shipped")
    expected = {
        "sms": {"text_body"},
        "push": {"subject", "text_body", "link", "image"},
        "email": {"subject", "preheader", "text_body", "html_body"},
        "hooks": {"json_body"},
    }
    for key, names in expected.items():
        html = marketing.get(
            f"/admin/campaigns/template/add/?event={event.pk}&channel={channels[key].pk}"
        ).content.decode()
        assert field_names(html) == names, key
    push = marketing.get(f"/admin/campaigns/template/add/?channel={channels['push'].pk}")
    assert ">Title<" in push.content.decode() and ">Link<" in push.content.decode()
    # No channel chosen yet: the form asks for one before any content field.
    html = marketing.get("/admin/campaigns/template/add/").content.decode()
    assert field_names(html) == set() and "Choose the channel" in html


def test_a_channels_limits_are_checked_on_save(marketing, channels):
    event = factories.EventFactory(key="order-shipped")
    base = {"event": event.pk, "language": "en", "is_active": "on"}
    add = "/admin/campaigns/template/add/"
    response = marketing.post(
        f"{add}?channel={channels['sms'].pk}",
        {**base, "channel": channels["sms"].pk, "text_body": "Order {{ order_id }} " + "x" * 1600},
    )
    errors = response.context["adminform"].form.errors
    assert "at most 1,600" in errors["text_body"][0] and "SMS segments" in errors["text_body"][1]
    response = marketing.post(
        f"{add}?channel={channels['push'].pk}",
        {
            **base,
            "channel": channels["push"].pk,
            "subject": "T" * 101,
            "text_body": "Body",
            "link": "not a link {{ order_id }}",
        },
    )
    errors = response.context["adminform"].form.errors
    assert "at most 100" in errors["subject"][0]
    assert "is not an http(s) address" in errors["link"][0]
    response = marketing.post(
        f"{add}?channel={channels['hooks'].pk}",
        {**base, "channel": channels["hooks"].pk, "json_body": '{"order": {{ order_id }}}'},
    )
    assert "is not JSON" in str(response.context["adminform"].form.errors)
    assert not Template.objects.exists()


def test_publish_versions_diff_and_roll_back_over_http(marketing):
    template = factories.TemplateFactory(channel=factories.memory_channel(), subject="One")
    Template.objects.filter(pk=template.pk).update(subject="Two")
    base = f"/admin/campaigns/template/{template.pk}"
    response = marketing.post(f"{base}/publish/", {"note": "second"}, follow=True)
    assert "Published v2" in response.content.decode()
    page = marketing.get(f"{base}/versions/").content.decode()
    assert "second" in page and page.count('name="v"') == 2
    diff = marketing.get(f"{base}/versions/diff/?v=1&v=2").content.decode()
    assert '<span class="diff-line diff-removed">\u2212 One</span>' in diff
    assert '<span class="diff-line diff-added">+ Two</span>' in diff
    assert marketing.get(f"{base}/versions/diff/?v=1&v=9").status_code == 404
    assert marketing.get(f"{base}/publish/").status_code == 405
    response = marketing.post(f"{base}/versions/1/rollback/", follow=True)
    assert "v3 is v1 again" in response.content.decode()
    template.refresh_from_db()
    assert (template.published.number, template.subject) == (3, "One")


def test_support_may_look_and_test_but_not_change_content(client, django_user_model, db):
    login(client, django_user_model, "Support")
    template = factories.TemplateFactory(channel=factories.memory_channel(), subject="One")
    layout = Layout.objects.create(name="Brand", channel=template.channel)
    partial = Partial.objects.create(name="footer", body="F")
    base = f"/admin/campaigns/template/{template.pk}"
    assert client.get(f"{base}/change/").status_code == 200  # read-only
    assert client.get(f"{base}/versions/").status_code == 200
    assert (
        client.post("/admin/campaigns/template/preview/", {"template": template.pk}).status_code
        == 200
    )
    for url in (
        f"{base}/publish/",
        f"{base}/versions/1/rollback/",
        f"/admin/campaigns/layout/{layout.pk}/publish/",
        f"/admin/campaigns/partial/{partial.pk}/republish/",
    ):
        assert client.post(url).status_code == 403, url
    response = client.post(f"{base}/change/", {"subject": "Changed"})
    assert response.status_code == 403
    assert (
        client.post(f"/admin/campaigns/layout/{layout.pk}/change/", {"name": "X"}).status_code
        == 403
    )
    assert (
        client.post(f"/admin/campaigns/partial/{partial.pk}/change/", {"name": "x"}).status_code
        == 403
    )
    template.refresh_from_db()
    assert (template.subject, template.versions.count()) == ("One", 1)


def test_the_preview_as_a_real_recipient(marketing, client, django_user_model):
    template = factories.TemplateFactory(
        channel=factories.memory_channel(),
        text_body="Hi {{ recipient.name }} ({{ recipient.plan }})",
    )
    factories.TemplateFactory(channel=template.channel, event=template.event, language="de")
    audience = Audience.objects.create(name="Customers", kind="contacts")
    grace = Contact.objects.create(
        audience=audience, email="grace@x.io", name="Grace", language="de", data={"plan": "gold"}
    )
    options = marketing.get("/admin/campaigns/template/preview/recipients/?q=grac").content.decode()
    assert f'value="contact:{grace.pk}"' in options and "Grace" in options
    html = marketing.post(
        "/admin/campaigns/template/preview/",
        {
            "template": template.pk,
            "text_body": template.text_body,
            "preview_recipient": f"contact:{grace.pk}",
        },
    ).content.decode()
    assert "Hi Grace (gold)" in html
    assert "Grace would get the de template, not this one." in html
    # Users are for who may see them: Marketing finds contacts only.
    factories.UserFactory(username="gracie", email="gracie@x.io")
    assert (
        "gracie"
        not in options
        + marketing.get("/admin/campaigns/template/preview/recipients/?q=gracie").content.decode()
    )


def test_the_layout_page_previews_its_draft_on_each_template_it_affects(marketing):
    mail = factories.memory_channel("mail")
    layout = Layout.objects.create(
        name="Brand", channel=mail, html_body="<b>{% block content %}{% endblock %}</b>"
    )
    layout_publish(layout=layout)
    template = factories.TemplateFactory(
        channel=mail, html_body="<i>{{ order_id }}</i>", layout=layout
    )
    page = marketing.get(f"/admin/campaigns/layout/{layout.pk}/change/").content.decode()
    assert "It affects 1 template" in page and str(template) in page
    html = marketing.post(
        f"/admin/campaigns/layout/{layout.pk}/preview/",
        {"preview_template": template.pk, "html_body": "<u>{% block content %}{% endblock %}</u>"},
    ).content.decode()
    assert "&lt;u&gt;&lt;i&gt;A-1&lt;/i&gt;&lt;/u&gt;" in html  # in the frame's srcdoc
    response = marketing.post(f"/admin/campaigns/layout/{layout.pk}/publish/", follow=True)
    assert "Not published: nothing changed since v1" in response.content.decode()


def test_the_translation_status(marketing, settings):
    settings.LANGUAGES = [("en", "English"), ("de", "German"), ("fr", "French")]
    memory = factories.memory_channel()
    factories.ChannelFactory(
        key="social",
        backend="channels.backends.social_x.XBackend",
        config={
            "api_key": "k",
            "api_secret": "s",
            "access_token": "a",
            "access_token_secret": "t",
            "account": "@shop",
        },
    )
    event = factories.EventFactory(key="order-shipped")
    de = factories.TemplateFactory(event=event, channel=memory, language="de")
    en = factories.TemplateFactory(event=event, channel=memory, language="en")  # after de
    factories.TemplateFactory(event=event, channel=memory, language="pt", published=False)
    html = marketing.get(f"/admin/campaigns/event/{event.pk}/change/").content.decode()
    cells = dict(re.findall(r'data-coverage="([^"]+)" data-state="([a-z]+)"', html))
    assert not [key for key in cells if key.startswith("social/")]  # posts to the site's own
    assert {key: state for key, state in cells.items() if key.startswith("memory/")} == {
        "memory/en": "current",  # the source language: en, the site's
        "memory/de": "outdated",  # translated before en was last published
        "memory/fr": "missing",
    }  # and no pt column: the site does not offer pt
    assert f"language=fr&amp;copy_from={en.pk}" in html  # the gap's form starts from en
    form = marketing.get(
        f"/admin/campaigns/template/add/?event={event.pk}&channel={memory.pk}&language=fr&copy_from={en.pk}"
    )
    assert form.context["adminform"].form.initial["subject"] == en.subject
    factories.template_publish_as_is(de)  # translated again
    html = marketing.get(f"/admin/campaigns/event/{event.pk}/change/").content.decode()
    assert 'data-coverage="memory/de" data-state="current"' in html


def test_event_variables_are_edited_as_rows(marketing):
    event = factories.EventFactory(
        key="order-shipped", variables=[{"name": "order_id", "label": "Order", "sample": "A-1"}]
    )
    page = marketing.get(f"/admin/campaigns/event/{event.pk}/change/").content.decode()
    assert 'name="variables-0-name" value="order_id"' in page and 'name="variables-1-name"' in page
    form = {
        "key": event.key,
        "name": event.name,
        "trigger": event.trigger,
        "unsubscribe_scope": event.unsubscribe_scope,
        "digest": event.digest,
        "digest_at": "09:00",
        "is_active": "on",
        "windows-TOTAL_FORMS": "0",
        "windows-INITIAL_FORMS": "0",
        "templates-TOTAL_FORMS": "0",
        "templates-INITIAL_FORMS": "0",
        "escalation_steps-TOTAL_FORMS": "0",
        "escalation_steps-INITIAL_FORMS": "0",
        "variables-rows": "3",
        "variables-0-name": "order_id",
        "variables-0-label": "Order",
        "variables-0-sample": "A-1",
        "variables-0-type": "text",
        "variables-0-required": "on",
        "variables-1-name": "total",
        "variables-1-label": "Total",
        "variables-1-sample": "9.50",
        "variables-1-type": "number",
        "variables-1-required": "on",
        "variables-2-name": "",
        "variables-2-type": "text",
    }
    response = marketing.post(f"/admin/campaigns/event/{event.pk}/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    event.refresh_from_db()
    assert event.variables == [
        {"name": "order_id", "label": "Order", "sample": "A-1"},
        {"name": "total", "label": "Total", "sample": 9.5, "type": "number"},
    ]
    bad = marketing.post(
        f"/admin/campaigns/event/{event.pk}/change/", {**form, "variables-1-sample": "lots"}
    )
    assert "variable 'total': sample 'lots' is not a number" in unescape(bad.content.decode())


def test_a_campaigns_values_are_checked_against_their_types(marketing):
    event = factories.EventFactory(
        key="sale",
        variables=[
            {"name": "discount", "label": "Discount", "sample": "10", "type": "integer"},
            {"name": "ends", "label": "Ends", "type": "date"},
        ],
    )
    audience = Audience.objects.create(name="Customers", kind="contacts")
    form = {
        "name": "Sale",
        "event": event.pk,
        "audience": audience.pk,
        "context__discount": "ten",
        "context__ends": "soon",
        "send_at_0": "",
        "send_at_1": "",
        "local_time": "",
    }
    response = marketing.post("/admin/campaigns/campaign/add/", form)
    assert response.context["adminform"].form.errors["context"] == [
        "Discount: 'ten' is not a whole number",
        "Ends: 'soon' is not a date (YYYY-MM-DD)",
    ]
    values = marketing.get(f"/admin/campaigns/campaign/values/?event={event.pk}").content.decode()
    assert (
        'type="number" name="context__discount"' in values
        and 'type="date" name="context__ends"' in values
    )
    response = marketing.post(
        "/admin/campaigns/campaign/add/",
        {**form, "context__discount": "15", "context__ends": "2027-05-01"},
    )
    assert response.status_code == 302
    assert Event.objects.get(pk=event.pk) and response.url
    from campaigns.models import Campaign

    assert Campaign.objects.get().context == {"discount": 15, "ends": "2027-05-01"}


def test_the_message_admin_shows_its_version_and_its_content_made_again(admin_client, db):
    template = factories.TemplateFactory(
        channel=factories.memory_channel(),
        event__key="order-shipped",
        html_body="<p>{{ order_id }}</p>",
    )
    (message,) = notify("order-shipped", {"email": "a@x.io"}, {"order_id": "<A-9>"}).messages
    Template.objects.filter(pk=template.pk).update(subject="changed draft")
    html = admin_client.get(f"/admin/campaigns/message/{message.pk}/change/").content.decode()
    assert f'/admin/campaigns/template/{template.pk}/versions/">template v1</a>' in html
    assert "Order &lt;A-9&gt; shipped" in html  # made from v1, escaped in the page
    assert "&lt;p&gt;&amp;lt;A-9&amp;gt;&lt;/p&gt;" in html  # the HTML in a sandboxed srcdoc
    assert Message.objects.get().subject == ""  # nothing of it was stored: it was made again


def test_the_template_list_shows_each_version_without_a_query_per_row(marketing):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    channel = factories.memory_channel()
    counts = []
    for n in (2, 6):
        while Template.objects.count() < n:
            factories.TemplateFactory(channel=channel)
        with CaptureQueriesContext(connection) as queries:
            html = marketing.get("/admin/campaigns/template/").content.decode()
        counts.append(len(queries))
        assert html.count(">v1<") == n
    assert counts[0] == counts[1]
