"""The template live preview: the service, and the admin endpoint htmx posts to."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group

from campaigns.domain.composition import Sources
from campaigns.domain.preview import sms_info, template_render_preview
from tests import factories

VARIABLES = [{"name": "order_id", "label": "Order", "sample": "A-1"}]


@pytest.mark.parametrize(
    ("text", "encoding", "length", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("x" * 160, "GSM-7", 160, 1),
        ("x" * 161, "GSM-7", 161, 2),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters count twice
        ("x" * 153 * 3, "GSM-7", 459, 3),
        ("ü" * 70, "GSM-7", 70, 1),
        ("ł" * 70, "UCS-2", 70, 1),
        ("ł" * 71, "UCS-2", 71, 2),
        ("😀" * 35, "UCS-2", 70, 1),  # surrogate pairs count as two
    ],
)
def test_sms_length_and_segments(text, encoding, length, segments):
    info = sms_info(text)
    assert (info.encoding, info.length, info.segments) == (encoding, length, segments)


def test_preview_renders_with_samples():
    preview = template_render_preview(
        variables=VARIABLES,
        sources=Sources(
            subject="Order {{ order_id }}",
            text="Hi {{ recipient.name }}",
            html="<p>{{ order_id }}</p>",
        ),
        context={"order_id": "<A-1>"},
        sms=True,
    )
    assert preview.errors == []
    assert (preview.subject, preview.text) == ("Order <A-1>", "Hi Ann Example")
    assert preview.html == "<p>&lt;A-1&gt;</p>"
    assert preview.sms.segments == 1


def test_preview_names_syntax_errors_unknown_and_missing_variables():
    broken = template_render_preview(
        variables=VARIABLES, sources=Sources(text="line one\n{% if x %}"), context={}
    )
    assert len(broken.errors) == 1 and "line 2" in broken.errors[0]
    unknown = template_render_preview(
        variables=VARIABLES,
        sources=Sources(subject="{{ order_id }}", text="a\n{{ coupon.code }}"),
        context={},
    )
    assert unknown.errors == [
        "unknown variable 'coupon' (line 2): the event does not declare it",
        "declared variable(s) missing from the sample values: order_id",
    ]


@pytest.fixture
def marketing_client(client, django_user_model, db):
    user = django_user_model.objects.create_user("mia", "mia@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Marketing"))
    client.force_login(user)
    return client


def test_the_admin_preview_endpoint(marketing_client):
    template = factories.TemplateFactory(channel=factories.memory_channel())
    form = {
        "event": template.event_id,
        "channel": template.channel_id,
        "subject": "Order {{ order_id }} is on its way",
        "text_body": "{{ order_id }}",
        "html_body": "<p>{{ order_id }}</p><script>alert(1)</script>",
    }
    response = marketing_client.post("/admin/campaigns/template/preview/", form)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Order A-1 is on its way" in html  # the event's sample value
    assert 'sandbox=""' in html and "&lt;script&gt;alert(1)" in html  # inert in srcdoc
    response = marketing_client.post(
        "/admin/campaigns/template/preview/",
        {**form, "preview_context": json.dumps({"order_id": "Z-9"})},
    )
    assert "Order Z-9 is on its way" in response.content.decode()
    response = marketing_client.post(
        "/admin/campaigns/template/preview/", {**form, "preview_context": "[1, 2"}
    )
    assert "sample values:" in response.content.decode()
    assert marketing_client.get("/admin/campaigns/template/preview/").status_code == 405


def test_the_preview_needs_a_permission(client, django_user_model, db):
    clerk = django_user_model.objects.create_user("clerk", "c@x.io", "pw", is_staff=True)
    client.force_login(clerk)
    assert client.post("/admin/campaigns/template/preview/", {}).status_code == 403


def test_saving_a_template_that_does_not_compile_is_refused(marketing_client):
    template = factories.TemplateFactory(channel=factories.memory_channel())
    url = f"/admin/campaigns/template/{template.pk}/change/"
    response = marketing_client.post(
        url,
        {
            "event": template.event_id,
            "channel": template.channel_id,
            "language": "en",
            "subject": "ok",
            "text_body": "{% for x in %}",
            "html_body": "",
            "is_active": "on",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "text_body:" in response.content.decode()
    template.refresh_from_db()
    assert template.text_body != "{% for x in %}"


def test_sample_values_field_by_field_then_json(marketing_client):
    template = factories.TemplateFactory(channel=factories.memory_channel())
    page = marketing_client.get(f"/admin/campaigns/template/{template.pk}/change/")
    assert 'name="preview_var__order_id" value="A-1"' in page.content.decode()
    form = {
        "event": template.event_id,
        "channel": template.channel_id,
        "subject": "Order {{ order_id }}",
        "text_body": "",
        "html_body": "",
        "preview_var__order_id": "B-2",
    }
    url = "/admin/campaigns/template/preview/"
    assert "Order B-2" in marketing_client.post(url, form).content.decode()
    form["preview_context"] = '{"order_id": "C-3"}'
    assert "Order C-3" in marketing_client.post(url, form).content.decode()


def test_the_preview_escapes_what_the_text_engine_rendered(client, django_user_model, db):
    """Subject and text render without escaping, so they are escaped where a page shows
    them: a Marketing user's markup (in the body or a sample value) reaches the superuser's
    page as text."""
    root = django_user_model.objects.create_superuser("root", "root@x.io", "pw")
    client.force_login(root)
    payload = "<img src=x onerror=\"document.title='XSS'\">"
    event = factories.EventFactory(
        key="promo", variables=[{"name": "who", "label": payload, "sample": payload}]
    )
    form = {
        "event": event.pk,
        "subject": f"Hi {{{{ who }}}} {payload}",
        "text_body": f"Hi {{{{ who }}}} {payload}",
        "html_body": "",
    }
    html = client.post("/admin/campaigns/template/preview/", form).content.decode()
    assert "<img" not in html
    escaped = "&lt;img src=x onerror=&quot;document.title=&#x27;XSS&#x27;&quot;&gt;"
    assert html.count(escaped) == 4  # subject and text, each the body's and the sample's
