"""The Telegram backend against a fake Bot API on 127.0.0.1: it checks the token in the path
and the JSON body of ``sendMessage``, and answers as the Bot API does (``{"ok": true,
"result": {...}}``, errors as ``{"ok": false, "error_code", "description", "parameters"}``)."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter

import pytest
from django.utils import timezone

from campaigns.api import InvalidRecipient, notify
from campaigns.models import ChannelAddress, Message, MessageStatus
from channels.backends.base import ConfigurationError, PermanentError
from channels.backends.telegram import TelegramBackend

from ... import factories
from ..conftest import channel_with_event, dispatch_again, notify_and_dispatch
from ..fakes import Reply, json_reply

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
BLOCKED, UNKNOWN, MIGRATED = "666", "404404", "-100500"


def bot_error(code: int, description: str, **parameters) -> Reply:
    body = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return json_reply(code, body)


class FakeBotApi:
    def __init__(self):
        self.sent = Counter()

    def __call__(self, request) -> Reply:
        if request.path != f"/bot{TOKEN}/sendMessage":
            if request.path.startswith("/bot") and request.path.endswith("/sendMessage"):
                return bot_error(401, "Unauthorized")
            return bot_error(404, "Not Found")
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/json"
        body = request.json()
        assert set(body) <= {
            "chat_id",
            "text",
            "parse_mode",
            "disable_notification",
            "link_preview_options",
        }
        chat_id = body["chat_id"]
        assert isinstance(chat_id, int) or re.fullmatch(r"@\w+", chat_id), chat_id
        if not body.get("text"):
            return bot_error(400, "Bad Request: message text is empty")
        if str(chat_id) == BLOCKED:
            return bot_error(403, "Forbidden: bot was blocked by the user")
        if str(chat_id) == UNKNOWN:
            return bot_error(400, "Bad Request: chat not found")
        if str(chat_id) == MIGRATED:
            return bot_error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=-1001234567890,
            )
        if request.scripted:
            return json_reply(200, {"ok": True, "result": {}})
        self.sent[chat_id] += 1
        return json_reply(
            200,
            {
                "ok": True,
                "result": {
                    "message_id": 100 + self.sent[chat_id],
                    "from": {"id": 123456789, "is_bot": True, "first_name": "Shop"},
                    "chat": {"id": chat_id, "type": "private"},
                    "date": 1700000000,
                    "text": body["text"],
                },
            },
        )


@pytest.fixture
def bot_api(serve):
    return serve(FakeBotApi())


def telegram_channel(server, **config):
    return channel_with_event(
        key="telegram",
        backend="chat.telegram",
        config={"base_url": server.url, "bot_token": TOKEN, **config},
    )


@pytest.mark.django_db(transaction=True)
def test_notify_sends_a_telegram_message_through_rq_worker(bot_api, run_worker):
    telegram_channel(bot_api, parse_mode="HTML", disable_link_preview=True)
    user = factories.UserFactory(first_name="Ann")
    ChannelAddress.objects.create(user=user, kind="chat_id", address="4242")

    notify("order-shipped", user, {"order_id": "A-7"}, channels=["telegram"])
    assert run_worker() == 1

    message = Message.objects.get()
    assert (message.status, message.provider_id) == (MessageStatus.SENT, "101")
    assert bot_api.requests[0].json() == {
        "chat_id": 4242,
        "text": "Hello Ann, order A-7 is on its way.",
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }


def test_a_batch_reuses_one_connection(bot_api, db):
    channel = telegram_channel(bot_api)
    recipients = [{"chat_id": str(1000 + i)} for i in range(5)] + [{"chat_id": "@shop_news"}]

    messages = notify_and_dispatch(channel, recipients)

    assert [m.status for m in messages] == [MessageStatus.SENT] * 6
    assert {m.provider_id for m in messages} == {"101"}
    assert bot_api.requests[-1].json()["chat_id"] == "@shop_news"
    assert (len(bot_api.requests), bot_api.connections) == (6, 1)


def test_a_blocked_bot_deactivates_the_chat_id(bot_api, db):
    channel = telegram_channel(bot_api)
    user = factories.UserFactory()
    ChannelAddress.objects.create(user=user, kind="chat_id", address=BLOCKED)

    (message,) = notify_and_dispatch(channel, user)

    assert (message.status, message.attempts) == (MessageStatus.FAILED, 1)
    assert (
        message.last_error
        == "AddressRejected: Telegram 403: Forbidden: bot was blocked by the user"
    )
    address = ChannelAddress.objects.get(kind="chat_id", address=BLOCKED)
    assert not address.is_active and "blocked" in address.deactivated_reason
    again = notify("order-shipped", user, {"order_id": "1"}, channels=["telegram"])
    assert again.messages == [] and again.skipped[0].reason == "no address"  # inactive: not loaded


def test_chat_not_found_fails_without_deactivating(bot_api, db):
    channel = telegram_channel(bot_api)

    unknown, migrated = notify_and_dispatch(channel, [{"chat_id": UNKNOWN}, {"chat_id": MIGRATED}])

    assert unknown.status == migrated.status == MessageStatus.FAILED
    assert unknown.last_error == "PermanentError: Telegram 400: Bad Request: chat not found"
    assert "(the group is now chat -1001234567890)" in migrated.last_error
    assert not ChannelAddress.objects.exists()


def test_a_wrong_token_fails_and_is_not_revealed(bot_api, db, caplog):
    channel = telegram_channel(bot_api, bot_token="987654321:" + "x" * 35)
    caplog.set_level(logging.INFO, logger="httpx")

    (message,) = notify_and_dispatch(channel, {"chat_id": "4242"})

    assert message.last_error == "PermanentError: Telegram 401: Unauthorized"
    assert "/bot[secret]/sendMessage" in caplog.text
    assert "x" * 35 not in caplog.text


def test_429_waits_for_retry_after(bot_api, db):
    channel = telegram_channel(bot_api)
    bot_api.script = [bot_error(429, "Too Many Requests: retry after 37", retry_after=37)]
    before = timezone.now()

    (message,) = notify_and_dispatch(channel, {"chat_id": "4242"})

    assert message.status == MessageStatus.RETRYING
    assert message.last_error == "TransientError: Telegram 429: Too Many Requests: retry after 37"
    assert message.next_attempt_at >= before + dt.timedelta(seconds=37)


def test_a_5xx_is_retried_then_sent(bot_api, db):
    channel = telegram_channel(bot_api)
    bot_api.script = [Reply(502, "<html><h1>502 Bad Gateway</h1></html>")]

    (message,) = notify_and_dispatch(channel, {"chat_id": "4242"})
    assert message.status == MessageStatus.RETRYING
    assert "Telegram HTTP 502: <html><h1>502 Bad Gateway" in message.last_error

    (message,) = dispatch_again([message])
    assert (message.status, message.provider_id, message.attempts) == ("sent", "101", 2)


def test_a_timeout_is_transient(bot_api, db):
    channel = telegram_channel(bot_api, timeout=0.3)
    bot_api.script = [Reply(200, {"ok": True, "result": {"message_id": 1}}, delay=1.5)]

    (message,) = notify_and_dispatch(channel, {"chat_id": "4242"})

    assert message.status == MessageStatus.RETRYING
    assert message.last_error == "TransientError: Telegram: no answer within 0.3s (ReadTimeout)"


def test_malformed_chat_ids_are_refused_at_notify(bot_api, db):
    telegram_channel(bot_api)
    with pytest.raises(InvalidRecipient, match="'ann smith' is not a Telegram chat id"):
        notify("order-shipped", {"chat_id": "ann smith"}, {"order_id": "1"}, channels=["telegram"])


def test_send_test(bot_api):
    backend = TelegramBackend(options={"base_url": bot_api.url, "bot_token": TOKEN})
    assert backend.send_test("4242", subject="Only a subject") == "101"
    assert bot_api.requests[0].json() == {"chat_id": 4242, "text": "Only a subject"}
    with pytest.raises(PermanentError, match="chat not found"):
        backend.send_test(UNKNOWN, text="Hi")


def test_options_are_validated():
    with pytest.raises(ConfigurationError, match="bot_token: a bot token from @BotFather"):
        TelegramBackend(options={"bot_token": "nope"})
    with pytest.raises(ConfigurationError, match="parse_mode"):
        TelegramBackend(options={"bot_token": TOKEN, "parse_mode": "BBCode"})
    assert TelegramBackend.secret_fields() == ("bot_token",)
