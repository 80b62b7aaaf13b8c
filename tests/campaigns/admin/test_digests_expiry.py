"""The admin's side of digests and expiry: the event's settings, the template preview's sample
``digest``, the message list's expiry filter, and the message page with its expiry, its
reason and a digest's occurrences — what an operator's browser gets."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from campaigns.api import notify
from campaigns.models import Event, Message
from campaigns.outbox.sweep import sweep
from tests import factories

pytestmark = pytest.mark.django_db


def staff(django_user_model, role: str) -> Client:
    user = django_user_model.objects.create_user(role.lower(), f"{role}@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def test_marketing_sets_an_events_digest_and_expiry_in_its_admin_page(django_user_model):
    event = factories.EventFactory(key="comment-posted", name="Comments")
    client = staff(django_user_model, "Marketing")
    url = f"/admin/campaigns/event/{event.pk}/change/"
    html = client.get(url).content.decode()
    for name in ("digest", "digest_at", "digest_choice", "expires_after"):
        assert f'name="{name}"' in html
    form = {
        "key": event.key,
        "name": event.name,
        "variables": "[]",
        "trigger": "default",
        "unsubscribe_scope": "event",
        "default_language": "",
        "digest": "daily",
        "digest_at": "08:30",
        "digest_choice": "on",
        "user_configurable": "on",
        "expires_after": "00:10:00",
        "is_active": "on",
        "windows-TOTAL_FORMS": "0",
        "windows-INITIAL_FORMS": "0",
        "templates-TOTAL_FORMS": "0",
        "templates-INITIAL_FORMS": "0",
        "escalation_steps-TOTAL_FORMS": "0",
        "escalation_steps-INITIAL_FORMS": "0",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    event = Event.objects.get(pk=event.pk)
    assert (event.digest, event.digest_at, event.digest_choice, event.expires_after) == (
        "daily",
        dt.time(8, 30),
        True,
        dt.timedelta(minutes=10),
    )


def test_the_preview_of_a_digested_events_template_gets_a_sample_digest(django_user_model):
    template = factories.TemplateFactory(channel=factories.memory_channel(), event__digest="hourly")
    client = staff(django_user_model, "Marketing")
    form = {
        "event": template.event_id,
        "channel": template.channel_id,
        "subject": "{{ digest.count }} orders",
        "text_body": "{% for item in digest.items %}[{{ item.order_id }}]{% endfor %}",
        "html_body": "",
    }
    html = client.post("/admin/campaigns/template/preview/", form).content.decode()
    assert "3 orders" in html and "[A-1][A-1][A-1]" in html
    assert "unknown variable" not in html  # digest, and the loop's item, are no strangers


def test_support_sees_the_expiry_and_why_on_the_list_and_the_message_page(
    email_channel, django_user_model
):
    factories.TemplateFactory(channel=email_channel, event__key="login-code")
    later = timezone.now() + dt.timedelta(hours=1)
    (expired,) = notify(
        "login-code",
        {"email": "ann@example.com"},
        {"order_id": "1"},
        scheduled_at=later,
        expires_at=later + dt.timedelta(minutes=5),
    ).messages
    (kept,) = notify("login-code", {"email": "bob@example.com"}, {"order_id": "2"}).messages
    sweep(now=later + dt.timedelta(minutes=6), enqueue=False)
    client = staff(django_user_model, "Support")

    listed = client.get("/admin/campaigns/message/?expiry=expired").content.decode()
    assert "ann@example.com" in listed and "bob@example.com" not in listed
    assert "Expired unsent" in listed
    html = client.get(f"/admin/campaigns/message/{expired.pk}/change/").content.decode()
    assert '<p id="message-reason"><strong>Why:</strong> expired</p>' in html
    assert 'id="message-expiry">expired ' in html
    assert (
        'id="message-expiry"'
        not in client.get(f"/admin/campaigns/message/{kept.pk}/change/").content.decode()
    )
    timeline = client.get("/admin/campaigns/message/people/address/ann@example.com/")
    timeline = timeline.content.decode()
    assert 'data-kind="decision" data-reason="expired" data-event="login-code"' in timeline
    assert f"message {expired.pk} expired unsent" in timeline


def test_the_message_page_lists_a_digests_occurrences(email_channel, django_user_model):
    factories.TemplateFactory(
        channel=email_channel,
        event__key="comment-posted",
        event__digest="hourly",
        text_body="{% for item in digest.items %}{{ item.order_id }};{% endfor %}",
    )
    for order_id in ("C-1", "C-2<b>"):
        (message,) = notify(
            "comment-posted", {"email": "ann@example.com"}, {"order_id": order_id}
        ).messages
    html = (
        staff(django_user_model, "Support")
        .get(f"/admin/campaigns/message/{message.pk}/change/")
        .content.decode()
    )
    assert "Digest: 2 occurrences" in html
    assert html.count('class="digest-item"') == 2
    assert "C-2&lt;b&gt;" in html and "C-2<b>" not in html  # escaped
    assert Message.objects.get().context == {"order_id": "C-2<b>"}  # the latest occurrence
