"""Send test from the admin: a real message through the real channel, to the test's SMTP."""

from __future__ import annotations

import re
import socket

import pytest
from django.contrib.auth.models import Group

from campaigns.models import Message
from tests import factories
from tests.channels.backends.test_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, twilio_error
from tests.channels.fakes import FakeServer, Reply
from tests.conftest import free_port


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


# --- every provider error ends as a message on the page, never a 500 ------------------------


def channel_test(client, channel, address):
    """POST the channel's "Send test" form; the page it answers with."""
    url = f"/admin/channels/channelconfig/{channel.pk}/send-test/"
    response = client.post(url, {"address": address})
    assert response.status_code == 200, response.status_code  # not sent: the form again
    return response.content.decode()


def test_an_smtp_server_refusing_the_connection_is_said_on_the_page(marketing, db):
    port = free_port()  # nothing listens there
    channel = factories.email_channel(port=port)
    html = channel_test(marketing, channel, "ops@example.com")
    assert "Test not sent: TransientError: SMTP connection to 127.0.0.1:" in html
    assert "refused" in html
    template = factories.TemplateFactory(channel=channel)
    url = f"/admin/campaigns/template/{template.pk}/send-test/"
    response = marketing.post(url, {"address": "qa@example.com"})
    assert response.status_code == 200
    assert "Test not sent: TransientError: SMTP connection" in response.content.decode()


def test_an_smtp_server_answering_550_is_said_on_the_page(marketing, email_channel, smtp):
    smtp.always = "550 5.1.1 <ops@example.com>: Recipient address rejected"
    html = channel_test(marketing, email_channel, "ops@example.com")
    assert "Test not sent: PermanentError: SMTP 550 5.1.1" in html
    assert "Recipient address rejected" in html


def test_an_smtp_server_that_never_answers_is_a_timeout_on_the_page(marketing, db):
    with socket.socket() as silent:  # accepts the connection, never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        channel = factories.email_channel(port=silent.getsockname()[1])
        channel.config["timeout"] = 0.3
        channel.save(update_fields=["config"])
        html = channel_test(marketing, channel, "ops@example.com")
    assert "Test not sent: TransientError: SMTP connection to 127.0.0.1:" in html
    assert "timed out" in html


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (
            twilio_error(500, 20500, "Internal Server Error"),
            "Test not sent: TransientError: SMS (Twilio) HTTP 500",
        ),
        (Reply(200, b"{}", delay=1.5), "Test not sent: TransientError: "),
        (
            twilio_error(401, 20003, "Authentication Error - invalid username"),
            "Test not sent: PermanentError: ",
        ),
    ],
    ids=["http-500", "timeout", "http-401"],
)
def test_an_http_providers_errors_are_said_on_the_page(marketing, db, reply, said):
    with FakeServer(FakeTwilio()) as twilio:
        twilio.script.append(reply)
        channel = factories.ChannelFactory(
            key="sms",
            backend="channels.backends.sms.TwilioSmsBackend",
            config={
                "base_url": twilio.url,
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_number": "+15005550006",
                "timeout": 0.5,
                "track_delivery": "off",
            },
        )
        html = channel_test(marketing, channel, "+4915112345678")
    assert said in html, re.search(r"Test not sent[^<]*", html).group(0)


def test_an_http_provider_refusing_the_connection_is_said_on_the_page(marketing, db):
    channel = factories.ChannelFactory(
        key="hook",
        backend="channels.backends.webhook.WebhookBackend",
        config={"url": f"http://127.0.0.1:{free_port()}/hook", "secret": "s" * 32},
    )
    html = channel_test(marketing, channel, "ops")
    assert "Test not sent: TransientError: " in html


def test_a_channel_whose_backend_is_gone_is_said_on_the_page(marketing, db):
    channel = factories.ChannelFactory(key="old", backend="myproject.removed.SmsBackend")
    html = channel_test(marketing, channel, "ops")
    assert "Test not sent: the channel is misconfigured: backend" in html
    assert "cannot be imported" in html
