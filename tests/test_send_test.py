"""Send test from the admin: a real message through the real channel, to the test's SMTP."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from campaigns.models import Message

from . import factories


@pytest.fixture
def marketing(client, django_user_model, db):
    user = django_user_model.objects.create_user("mia", "mia@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Marketing"))
    client.force_login(user)
    return client


@pytest.fixture
def template(email_channel):
    return factories.TemplateFactory(
        channel=email_channel,
        subject="Order {{ order_id }} shipped",
        html_body="<p>Order <b>{{ order_id }}</b></p>",
    )


def test_a_template_test_reaches_the_smtp_server(marketing, template, smtp):
    url = f"/admin/campaigns/template/{template.pk}/send-test/"
    assert "Send a test of" in marketing.get(url).content.decode()
    response = marketing.post(url, {"address": "qa@example.com"}, follow=True)
    assert "Test sent to qa@example.com" in response.content.decode()
    (mail,) = smtp.messages
    assert (mail["To"], mail["Subject"]) == ("qa@example.com", "[Test] Order A-1 shipped")
    assert "<b>A-1</b>" in mail.get_body(("html",)).get_content()
    assert Message.objects.count() == 0  # not recorded in the outbox


def test_the_providers_error_is_shown(marketing, template, smtp):
    smtp.always = "550 5.7.1 Relaying denied for qa@example.com"
    url = f"/admin/campaigns/template/{template.pk}/send-test/"
    response = marketing.post(url, {"address": "qa@example.com"})
    assert response.status_code == 200
    assert "SMTP 550 5.7.1 Relaying denied" in response.content.decode()
    response = marketing.post(url, {"address": "not an address"})
    assert "is not a valid email address" in response.content.decode()


def test_a_channel_test(marketing, email_channel, smtp):
    url = f"/admin/channels/channelconfig/{email_channel.pk}/send-test/"
    marketing.post(url, {"address": "ops@example.com"})
    (mail,) = smtp.messages
    assert "test message from Notifier's channel" in mail.get_body(("plain",)).get_content()


def test_send_test_needs_its_permission(client, django_user_model, template, smtp):
    viewer = django_user_model.objects.create_user("v", "v@x.io", "pw", is_staff=True)
    viewer.user_permissions.add(
        *Group.objects.get(name="Marketing").permissions.exclude(codename="send_test")
    )
    client.force_login(viewer)
    url = f"/admin/campaigns/template/{template.pk}/send-test/"
    assert client.post(url, {"address": "qa@example.com"}).status_code == 403
    assert smtp.messages == []
