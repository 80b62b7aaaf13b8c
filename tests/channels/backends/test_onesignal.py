"""The OneSignal backend against a fake of OneSignal's Create Notification API on 127.0.0.1:
it checks the key, the path and the JSON body, and answers as OneSignal does (``{"id": …}``;
``{"id": "", "errors": [...]}`` when nobody is subscribed; ``{"errors": {"invalid_player_ids":
[...]}}``; ``{"errors": [...]}`` with 400, 401, 429)."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import pytest
from django.utils import timezone

from campaigns.api import InvalidRecipient, notify
from campaigns.models import ChannelAddress, Message, MessageStatus
from channels.backends.base import ConfigurationError, PermanentError
from channels.backends.onesignal import OneSignalBackend

from ... import factories
from ..conftest import channel_with_event, dispatch_again, notify_and_dispatch
from ..fakes import Reply, json_reply

APP_ID = "5eb5a37e-b458-11e3-ac11-000c2940e62c"
API_KEY = "os_v2_app_testkey0123456789"
DEAD_SUBSCRIPTION = "00000000-0000-4000-8000-00000000dead"
UNSUBSCRIBED_USER = "999"


def key_of(message) -> str:
    """The idempotency key OneSignal gets for a message: its UUID with the version bits of a
    v4 (OneSignal has asked for v3 or v4; a message's UUID is a v7)."""
    assert message.uuid.version == 7
    return str(uuid.UUID(int=message.uuid.int, version=4))


class FakeOneSignal:
    def __init__(self):
        self.ids = (f"b98881cc-1e94-4366-bbd9-{n:012d}" for n in itertools.count(1))
        self.created: list[dict] = []

    def __call__(self, request) -> Reply:
        if request.headers.get("authorization") != f"Key {API_KEY}":
            return json_reply(
                401,
                {
                    "errors": [
                        "Access denied.  Please include an 'Authorization: ...' header with a "
                        "valid API key (https://documentation.onesignal.com/docs/accounts-and-keys)."
                    ]
                },
            )
        assert (request.method, request.path) == ("POST", "/notifications")
        body = request.json()
        if body.get("app_id") != APP_ID:
            return json_reply(
                400,
                {
                    "errors": [
                        "app_id not found. You may be missing a Content-Type: application/json "
                        "header."
                    ]
                },
            )
        assert body["target_channel"] == "push"
        assert uuid.UUID(body["idempotency_key"]).version == 4
        assert "en" in body["contents"]
        assert ("include_aliases" in body) != ("include_subscription_ids" in body)
        if body.get("include_subscription_ids") == [DEAD_SUBSCRIPTION]:
            return json_reply(
                200, {"id": "", "errors": {"invalid_player_ids": [DEAD_SUBSCRIPTION]}}
            )
        if body.get("include_aliases") == {"external_id": [UNSUBSCRIBED_USER]}:
            return json_reply(
                200, {"id": "", "errors": ["All included players are not subscribed"]}
            )
        if request.scripted:
            return json_reply(200, {"id": "scripted"})
        self.created.append(body)
        return json_reply(200, {"id": next(self.ids), "external_id": None})


@pytest.fixture
def onesignal(serve):
    server = serve(FakeOneSignal())
    server.fake = server.handler
    return server


def onesignal_channel(server, **config):
    return channel_with_event(
        key="onesignal",
        backend="push.onesignal",
        config={"base_url": server.url, "app_id": APP_ID, "api_key": API_KEY, **config},
    )


@pytest.mark.django_db(transaction=True)
def test_notify_creates_a_notification_through_rq_worker(onesignal, run_worker):
    channel = onesignal_channel(onesignal)
    user = factories.UserFactory(first_name="Anna")
    factories.TemplateFactory(
        event=channel.templates.get().event,
        channel=channel,
        language="de",
        subject="Bestellung {{ order_id }} versandt",
        text_body="Bestellung {{ order_id }} ist unterwegs",
    )

    notify(
        "order-shipped",
        {"user_id": user.pk, "language": "de"},
        {"order_id": "A-7"},
        channels=["onesignal"],
        extra={"url": "https://shop.example.com/orders/A-7", "data": {"order": "A-7"}},
    )
    assert run_worker() == 1

    message = Message.objects.get()
    assert message.status == MessageStatus.SENT
    assert message.provider_id == "b98881cc-1e94-4366-bbd9-000000000001"
    assert onesignal.fake.created == [
        {
            "app_id": APP_ID,
            "target_channel": "push",
            "include_aliases": {"external_id": [str(user.pk)]},
            "headings": {"de": "Bestellung A-7 versandt", "en": "Bestellung A-7 versandt"},
            "contents": {
                "de": "Bestellung A-7 ist unterwegs",
                "en": "Bestellung A-7 ist unterwegs",
            },
            "url": "https://shop.example.com/orders/A-7",
            "data": {"notifier_id": str(message.uuid), "event": "order-shipped", "order": "A-7"},
            "idempotency_key": key_of(message),
        }
    ]


def test_a_batch_reuses_one_connection(onesignal, db):
    channel = onesignal_channel(onesignal, target="subscription_id")
    recipients = [{"onesignal_id": str(uuid.uuid4())} for _ in range(4)]

    messages = notify_and_dispatch(channel, recipients)

    assert [m.status for m in messages] == [MessageStatus.SENT] * 4
    assert [r.json()["include_subscription_ids"] for r in onesignal.requests] == [
        [r["onesignal_id"]] for r in recipients
    ]
    assert onesignal.connections == 1


def test_an_invalid_subscription_is_deactivated(onesignal, db):
    channel = onesignal_channel(onesignal, target="subscription_id")

    (message,) = notify_and_dispatch(channel, {"onesignal_id": DEAD_SUBSCRIPTION})

    assert message.status == MessageStatus.FAILED
    assert message.last_error == (
        f"AddressRejected: Push (OneSignal): invalid_player_ids: ['{DEAD_SUBSCRIPTION}']"
    )
    assert not ChannelAddress.objects.get(kind="onesignal_id", address=DEAD_SUBSCRIPTION).is_active


def test_nobody_subscribed_fails_without_deactivating_the_user_id(onesignal, db):
    channel = onesignal_channel(onesignal)

    (message,) = notify_and_dispatch(channel, _user(UNSUBSCRIBED_USER))

    assert message.status == MessageStatus.FAILED
    assert message.last_error == (
        "PermanentError: Push (OneSignal): no notification created: "
        "All included players are not subscribed"
    )
    assert not ChannelAddress.objects.exists()


def _user(pk: str) -> dict:
    return {"user_id": factories.UserFactory(id=int(pk)).pk}


def test_request_errors(onesignal, db):
    channel = onesignal_channel(onesignal, api_key="wrong")
    (message,) = notify_and_dispatch(channel, _user("5"))
    assert message.status == MessageStatus.FAILED
    assert message.last_error.startswith(
        "PermanentError: Push (OneSignal) HTTP 401: Access denied."
    )


def test_429_honours_retry_after_then_sends(onesignal, db):
    channel = onesignal_channel(onesignal)
    onesignal.script = [
        json_reply(429, {"errors": ["API rate limit exceeded"]}, **{"Retry-After": "15"})
    ]
    before = timezone.now()

    (message,) = notify_and_dispatch(channel, _user("5"))
    assert message.status == MessageStatus.RETRYING
    assert "HTTP 429: API rate limit exceeded" in message.last_error
    assert message.next_attempt_at >= before + dt.timedelta(seconds=15)

    (message,) = dispatch_again([message])
    assert message.status == MessageStatus.SENT
    first, second = (r.json()["idempotency_key"] for r in onesignal.requests)
    assert first == second == key_of(message)  # a retry cannot notify twice


def test_a_5xx_is_retried(onesignal, db):
    channel = onesignal_channel(onesignal)
    onesignal.script = [json_reply(500, {"errors": ["Internal server error"]})]
    (message,) = notify_and_dispatch(channel, _user("5"))
    assert message.status == MessageStatus.RETRYING
    assert "HTTP 500: Internal server error" in message.last_error


def test_a_timeout_is_transient(onesignal, db):
    channel = onesignal_channel(onesignal, timeout=0.3)
    onesignal.script = [Reply(200, {"id": "late"}, delay=1.5)]
    (message,) = notify_and_dispatch(channel, _user("5"))
    assert message.status == MessageStatus.RETRYING
    assert "no answer within 0.3s" in message.last_error


def test_malformed_subscription_ids_are_refused_at_notify(onesignal, db):
    onesignal_channel(onesignal, target="subscription_id")
    with pytest.raises(InvalidRecipient, match="'abc' is not a OneSignal subscription id"):
        notify("order-shipped", {"onesignal_id": "abc"}, {"order_id": "1"}, channels=["onesignal"])


def test_send_test(onesignal):
    backend = OneSignalBackend(
        options={"base_url": onesignal.url, "app_id": APP_ID, "api_key": API_KEY}
    )
    assert backend.send_test("42", subject="Test", text="It works").startswith("b98881cc")
    with pytest.raises(PermanentError, match="not subscribed"):
        backend.send_test(UNSUBSCRIBED_USER, text="It works")


def test_options_are_validated():
    with pytest.raises(ConfigurationError, match="app_id"):
        OneSignalBackend(options={"app_id": "nope", "api_key": API_KEY})
    with pytest.raises(ConfigurationError, match="target"):
        OneSignalBackend(options={"app_id": APP_ID, "api_key": API_KEY, "target": "email"})
    assert OneSignalBackend.secret_fields() == ("api_key",)
