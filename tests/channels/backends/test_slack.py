"""The Slack backend against a fake Slack on 127.0.0.1: incoming webhooks (``/services/…``,
answering ``ok`` or an error word) and the Web API's ``chat.postMessage`` (HTTP 200 with
``{"ok": false, "error": …}``, HTTP 429 with ``Retry-After``)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.utils import timezone

from campaigns.api import InvalidRecipient, notify
from campaigns.models import ChannelAddress, Message, MessageStatus
from channels.backends.base import ConfigurationError, PermanentError
from channels.backends.slack import SlackBackend

from ... import factories
from ..conftest import channel_with_event, dispatch_again, notify_and_dispatch
from ..fakes import Reply, json_reply

HOOK = "/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX"
ARCHIVED_HOOK = "/services/T0001/B0002/YYYYYYYYYYYYYYYYYYYYYYYY"
TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"


class FakeSlack:
    def __init__(self):
        self.posted: list[dict] = []

    def __call__(self, request) -> Reply:
        assert request.method == "POST"
        if request.path.startswith("/services/"):
            return self.webhook(request)
        assert request.path == "/api/chat.postMessage"
        return self.post_message(request)

    def webhook(self, request) -> Reply:
        if request.path == ARCHIVED_HOOK:
            return Reply(410, "channel_is_archived")
        if request.path != HOOK:
            return Reply(404, "no_service")
        try:
            body = request.json()
        except ValueError:
            return Reply(400, "invalid_payload")
        if not body.get("text"):
            return Reply(400, "no_text")
        if not request.scripted:
            self.posted.append(body)
        return Reply(200, "ok")

    def post_message(self, request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return json_reply(200, {"ok": False, "error": "invalid_auth"})
        assert request.headers["content-type"].startswith("application/json")
        body = request.json()
        assert set(body) == {"channel", "text"}
        channel = body["channel"]
        if channel == "C0ARCHIVED":
            return json_reply(200, {"ok": False, "error": "is_archived"})
        if channel == "C0NOTFOUND":
            return json_reply(200, {"ok": False, "error": "channel_not_found"})
        if request.scripted:
            return json_reply(200, {"ok": True, "channel": channel, "ts": "0"})
        self.posted.append(body)
        ts = f"1700000000.{len(self.posted):06d}"
        return json_reply(
            200,
            {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {"type": "message", "text": body["text"], "ts": ts, "bot_id": "B1"},
            },
        )


@pytest.fixture
def slack(serve):
    server = serve(FakeSlack())
    server.fake = server.handler
    return server


def bot_channel(server, **config):
    return channel_with_event(
        key="slack",
        backend="chat.slack",
        config={"base_url": f"{server.url}/api", "bot_token": TOKEN, **config},
    )


def webhook_channel(server, path=HOOK, **config):
    return channel_with_event(
        key="slack", backend="chat.slack", config={"webhook_url": server.url + path, **config}
    )


@pytest.mark.django_db(transaction=True)
def test_notify_posts_a_direct_message_through_rq_worker(slack, run_worker):
    bot_channel(slack)
    user = factories.UserFactory(first_name="Ann")
    ChannelAddress.objects.create(user=user, kind="slack_id", address="U024BE7LH")

    notify("order-shipped", user, {"order_id": "A-7"}, channels=["slack"])
    assert run_worker() == 1

    message = Message.objects.get()
    assert (message.status, message.provider_id) == ("sent", "U024BE7LH/1700000000.000001")
    assert slack.fake.posted == [
        {"channel": "U024BE7LH", "text": "Hello Ann, order A-7 is on its way."}
    ]


@pytest.mark.django_db(transaction=True)
def test_notify_posts_to_an_incoming_webhook_through_rq_worker(slack, run_worker, caplog):
    webhook_channel(slack)
    user = factories.UserFactory(first_name="Ann")
    caplog.set_level(logging.INFO, logger="httpx")

    notify("order-shipped", user, {"order_id": "A-7"}, channels=["slack"])
    assert run_worker() == 1

    message = Message.objects.get()
    assert (message.status, message.address, message.provider_id) == ("sent", str(user.pk), "")
    assert slack.fake.posted == [{"text": "Hello Ann, order A-7 is on its way."}]
    assert "/services/[secret]" in caplog.text and "XXXXXXXX" not in caplog.text


def test_a_batch_reuses_one_connection(slack, db):
    channel = bot_channel(slack)

    messages = notify_and_dispatch(channel, [{"slack_id": f"U00000{i}X"} for i in range(5)])

    assert [m.status for m in messages] == [MessageStatus.SENT] * 5
    assert (len(slack.requests), slack.connections) == (5, 1)


def test_api_errors(slack, db):
    channel = bot_channel(slack)

    archived, missing = notify_and_dispatch(
        channel, [{"slack_id": "C0ARCHIVED"}, {"slack_id": "C0NOTFOUND"}]
    )

    assert archived.last_error == "AddressRejected: Slack chat.postMessage: is_archived"
    assert not ChannelAddress.objects.get(kind="slack_id", address="C0ARCHIVED").is_active
    assert missing.status == MessageStatus.FAILED
    assert missing.last_error == "PermanentError: Slack chat.postMessage: channel_not_found"
    assert not ChannelAddress.objects.filter(address="C0NOTFOUND").exists()


def test_a_revoked_token_fails(slack, db):
    channel = bot_channel(slack, bot_token="xoxb-revoked")
    (message,) = notify_and_dispatch(channel, {"slack_id": "U024BE7LH"})
    assert message.last_error == "PermanentError: Slack chat.postMessage: invalid_auth"


@pytest.mark.parametrize(
    ("path", "text", "error"),
    [
        (HOOK, "", "Slack HTTP 400: no_text"),
        (ARCHIVED_HOOK, "Hi", "Slack HTTP 410: channel_is_archived"),
        ("/services/T0001/B0009/ZZZ", "Hi", "Slack HTTP 404: no_service"),
    ],
)
def test_webhook_errors_fail_the_message(slack, db, path, text, error):
    backend = SlackBackend(options={"webhook_url": slack.url + path})
    with pytest.raises(PermanentError) as raised:
        backend.send_test("1", text=text)
    assert str(raised.value) == error


@pytest.mark.parametrize(
    ("mode", "answer"),
    [
        ("bot", json_reply(429, {"ok": False, "error": "ratelimited"}, **{"Retry-After": "30"})),
        ("webhook", Reply(429, "rate_limited", {"Retry-After": "30"})),
    ],
)
def test_429_honours_retry_after(slack, db, mode, answer):
    if mode == "bot":
        channel = bot_channel(slack)
    else:
        channel = webhook_channel(slack, address_key="slack_id")
    slack.script = [answer]
    before = timezone.now()

    (message,) = notify_and_dispatch(channel, {"slack_id": "U024BE7LH"})

    assert message.status == MessageStatus.RETRYING
    assert "Slack HTTP 429" in message.last_error
    assert message.next_attempt_at >= before + dt.timedelta(seconds=30)


def test_server_errors_retry_then_send(slack, db):
    channel = bot_channel(slack)
    slack.script = [json_reply(200, {"ok": False, "error": "service_unavailable"})]

    (message,) = notify_and_dispatch(channel, {"slack_id": "U024BE7LH"})
    assert message.status == MessageStatus.RETRYING
    assert message.last_error == "TransientError: Slack chat.postMessage: service_unavailable"

    (message,) = dispatch_again([message])
    assert (message.status, message.provider_id) == ("sent", "U024BE7LH/1700000000.000001")


def test_a_timeout_is_transient(slack, db):
    channel = bot_channel(slack, timeout=0.3)
    slack.script = [Reply(200, "{}", delay=1.5)]
    (message,) = notify_and_dispatch(channel, {"slack_id": "U024BE7LH"})
    assert message.status == MessageStatus.RETRYING
    assert message.last_error == "TransientError: Slack: no answer within 0.3s (ReadTimeout)"


def test_malformed_slack_ids_are_refused_at_notify(slack, db):
    bot_channel(slack)
    with pytest.raises(InvalidRecipient, match="'#general' is not a Slack user or channel id"):
        notify("order-shipped", {"slack_id": "#general"}, {"order_id": "1"}, channels=["slack"])


def test_send_test(slack):
    backend = SlackBackend(options={"base_url": f"{slack.url}/api", "bot_token": TOKEN})
    assert backend.send_test("C024BE91L", text="Test") == "C024BE91L/1700000000.000001"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({}, "set either webhook_url or bot_token"),
        ({"webhook_url": "https://hooks.slack.com/services/x", "bot_token": TOKEN}, "either"),
        ({"bot_token": "abc"}, "bot_token: a Slack token"),
    ],
)
def test_options_are_validated(options, problem):
    with pytest.raises(ConfigurationError, match=problem):
        SlackBackend(options=options)
    assert set(SlackBackend.secret_fields()) == {"webhook_url", "bot_token"}
