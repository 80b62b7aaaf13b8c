"""The Expo push backend against a fake of Expo's push API on 127.0.0.1: it checks the path,
headers and the array of messages, and answers one ticket per message as Expo does
(``{"data": [{"status": "ok", "id": …}, {"status": "error", "details": {"error": …}}]}``),
or refuses the request as a whole (``{"errors": [{"code", "message"}]}``). It also answers
``/push/getReceipts`` (``{"ids": [...]}`` → ``{"data": {id: receipt}}``, ids without a
receipt left out), used by ``test_expo_receipts``."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.utils import timezone

from campaigns.api import InvalidRecipient, notify
from campaigns.models import ChannelAddress, Message, MessageStatus
from channels.backends.base import AddressRejected, ConfigurationError
from channels.backends.expo import ExpoPushBackend

from ... import factories
from ..conftest import channel_with_event, dispatch_again, notify_and_dispatch
from ..fakes import Reply, json_reply

ACCESS_TOKEN = "expo-access-token-123"


def token(name: str) -> str:
    return f"ExponentPushToken[{name}]"


class FakeExpo:
    """``dead…`` tokens are unregistered; ``big…`` ones get MessageTooBig; ``fast…`` ones
    MessageRateExceeded. Their receipts: ``gone…`` tokens get a ticket, then a
    DeviceNotRegistered receipt (the app was uninstalled after the send); ``creds…`` ones an
    InvalidCredentials receipt; ``late…`` ones no receipt yet; the others ``ok``."""

    def __init__(self):
        self.ids = (f"0190-ticket-{n:04d}" for n in itertools.count(1))
        self.pushed: list[dict] = []
        self.tickets: dict[str, str] = {}  # ticket id → push token
        self.receipt_requests: list[list[str]] = []

    def __call__(self, request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            return json_reply(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "The bearer token is invalid."}]},
            )
        if request.path == "/--/api/v2/push/getReceipts":
            return self.receipts(request)
        assert (request.method, request.path) == ("POST", "/--/api/v2/push/send")
        assert request.headers["content-type"] == "application/json"
        assert request.headers["accept"] == "application/json"
        messages = request.json()
        assert isinstance(messages, list) and 1 <= len(messages) <= 100
        if request.scripted:
            return json_reply(200, {"data": [{"status": "ok", "id": "x"} for _ in messages]})
        tickets = []
        for message in messages:
            assert set(message) <= {
                "to",
                "title",
                "body",
                "data",
                "sound",
                "priority",
                "channelId",
                "ttl",
                "richContent",  # {"image": url}: ExpoPushMessage in expo-server-sdk-node
            }
            name = message["to"].removeprefix("ExponentPushToken[")
            if name.startswith("dead"):
                tickets.append(
                    {
                        "status": "error",
                        "message": f'"{message["to"]}" is not a registered push notification '
                        "recipient",
                        "details": {"error": "DeviceNotRegistered", "expoPushToken": message["to"]},
                    }
                )
            elif name.startswith("big"):
                tickets.append(
                    {
                        "status": "error",
                        "message": "Message too big: 4200 bytes is over the 4096 byte limit",
                        "details": {"error": "MessageTooBig"},
                    }
                )
            elif name.startswith("fast"):
                tickets.append(
                    {
                        "status": "error",
                        "message": "This device is receiving too many notifications",
                        "details": {"error": "MessageRateExceeded"},
                    }
                )
            else:
                self.pushed.append(message)
                tickets.append({"status": "ok", "id": next(self.ids)})
                self.tickets[tickets[-1]["id"]] = message["to"]
        return json_reply(200, {"data": tickets})

    def receipts(self, request) -> Reply:
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["accept"] == "application/json"
        body = request.json()
        assert set(body) == {"ids"} and isinstance(body["ids"], list), body
        if len(body["ids"]) > 1000:
            return json_reply(
                400,
                {
                    "errors": [
                        {
                            "code": "PUSH_TOO_MANY_RECEIPTS",
                            "message": "You are trying to get more than 1000 push receipts in "
                            "one request.",
                        }
                    ]
                },
            )
        self.receipt_requests.append(body["ids"])
        data = {}
        for ticket in body["ids"]:
            name = self.tickets.get(ticket, "late").removeprefix("ExponentPushToken[")
            if name.startswith("late"):
                continue  # not ready (or unknown): Expo leaves the id out
            if name.startswith("gone"):
                data[ticket] = {
                    "status": "error",
                    "message": f'"{self.tickets[ticket]}" is not a registered push '
                    "notification recipient",
                    "details": {"error": "DeviceNotRegistered"},
                }
            elif name.startswith("creds"):
                data[ticket] = {
                    "status": "error",
                    "message": "The Apple Push Notification service failed to send the "
                    "notification: invalid credentials",
                    "details": {"error": "InvalidCredentials", "fault": "developer"},
                }
            else:
                data[ticket] = {"status": "ok"}
        return json_reply(200, {"data": data})


@pytest.fixture
def expo(serve):
    server = serve(FakeExpo())
    server.fake = server.handler
    return server


def expo_channel(server, **config):
    return channel_with_event(
        key="push",
        backend="push.expo",
        config={"base_url": server.url, "access_token": ACCESS_TOKEN, **config},
    )


@pytest.mark.django_db(transaction=True)
def test_notify_pushes_through_rq_worker(expo, run_worker):
    expo_channel(expo, sound="default", channel_id="orders")
    user = factories.UserFactory(first_name="Ann")
    ChannelAddress.objects.create(user=user, kind="push_token", address=token("ann-phone"))

    notify(
        "order-shipped",
        user,
        {"order_id": "A-7"},
        channels=["push"],
        extra={"data": {"url": "/orders/A-7"}},
    )
    assert run_worker() == 1

    message = Message.objects.get()
    assert (message.status, message.provider_id) == (MessageStatus.SENT, "0190-ticket-0001")
    assert expo.fake.pushed == [
        {
            "to": token("ann-phone"),
            "title": "Order A-7 shipped",
            "body": "Hello Ann, order A-7 is on its way.",
            "data": {
                "notifier_id": str(message.uuid),
                "event": "order-shipped",
                "url": "/orders/A-7",
            },
            "sound": "default",
            "channelId": "orders",
        }
    ]


def test_a_batch_goes_in_chunks_over_one_connection(expo, db):
    channel = expo_channel(expo, chunk_size=2)

    messages = notify_and_dispatch(channel, [{"push_token": token(f"p{i}")} for i in range(5)])

    assert [m.status for m in messages] == [MessageStatus.SENT] * 5
    assert [m.provider_id for m in messages] == [f"0190-ticket-{n:04d}" for n in range(1, 6)]
    assert [len(r.json()) for r in expo.requests] == [2, 2, 1]
    assert expo.connections == 1


def test_ticket_errors(expo, db):
    channel = expo_channel(expo)

    ok, dead, big, fast = notify_and_dispatch(
        channel,
        [{"push_token": token(name)} for name in ("ok", "dead-1", "big-1", "fast-1")],
    )

    assert len(expo.requests) == 1  # one request for the four
    assert ok.status == MessageStatus.SENT
    assert dead.status == MessageStatus.FAILED
    assert dead.last_error == (
        'AddressRejected: Expo DeviceNotRegistered: "ExponentPushToken[dead-1]" is not a '
        "registered push notification recipient"
    )
    assert not ChannelAddress.objects.get(kind="push_token", address=token("dead-1")).is_active
    assert big.status == MessageStatus.FAILED and "MessageTooBig" in big.last_error
    assert fast.status == MessageStatus.RETRYING and "MessageRateExceeded" in fast.last_error
    assert ChannelAddress.objects.count() == 1


def test_a_refused_request_fails_the_chunk_with_expos_text(expo, db):
    channel = expo_channel(expo, access_token="wrong")

    messages = notify_and_dispatch(
        channel, [{"push_token": token("a")}, {"push_token": token("b")}]
    )

    assert {m.status for m in messages} == {MessageStatus.FAILED}
    assert messages[0].last_error == (
        "PermanentError: Push (Expo) HTTP 401: UNAUTHORIZED: The bearer token is invalid."
    )


def test_429_honours_retry_after_for_the_chunk(expo, db):
    channel = expo_channel(expo)
    expo.script = [
        json_reply(
            429,
            {"errors": [{"code": "TOO_MANY_REQUESTS", "message": "Rate limit exceeded"}]},
            **{"Retry-After": "20"},
        )
    ]
    before = timezone.now()

    messages = notify_and_dispatch(
        channel, [{"push_token": token("a")}, {"push_token": token("b")}]
    )

    assert {m.status for m in messages} == {MessageStatus.RETRYING}
    assert "HTTP 429: TOO_MANY_REQUESTS: Rate limit exceeded" in messages[0].last_error
    assert all(m.next_attempt_at >= before + dt.timedelta(seconds=20) for m in messages)


def test_a_5xx_is_retried_then_sent(expo, db):
    channel = expo_channel(expo)
    expo.script = [Reply(503, "upstream connect error")]

    (message,) = notify_and_dispatch(channel, {"push_token": token("a")})
    assert message.status == MessageStatus.RETRYING
    assert "Push (Expo) HTTP 503: upstream connect error" in message.last_error

    (message,) = dispatch_again([message])
    assert (message.status, message.provider_id) == ("sent", "0190-ticket-0001")


def test_a_timeout_is_transient(expo, db):
    channel = expo_channel(expo, timeout=0.3)
    expo.script = [Reply(200, {"data": [{"status": "ok", "id": "late"}]}, delay=1.5)]

    (message,) = notify_and_dispatch(channel, {"push_token": token("a")})

    assert message.status == MessageStatus.RETRYING
    assert "no answer within 0.3s" in message.last_error


def test_malformed_tokens_are_refused_at_notify(expo, db):
    expo_channel(expo)
    with pytest.raises(InvalidRecipient, match="'abc' is not an Expo push token"):
        notify("order-shipped", {"push_token": "abc"}, {"order_id": "1"}, channels=["push"])


def test_send_test(expo):
    backend = ExpoPushBackend(options={"base_url": expo.url, "access_token": ACCESS_TOKEN})
    assert backend.send_test(token("t"), subject="Test", text="It works") == "0190-ticket-0001"
    with pytest.raises(AddressRejected, match="DeviceNotRegistered"):
        backend.send_test(token("dead"), text="It works")


def test_options_are_validated():
    with pytest.raises(ConfigurationError, match="chunk_size"):
        ExpoPushBackend(options={"chunk_size": 500})
    with pytest.raises(ConfigurationError, match="priority"):
        ExpoPushBackend(options={"priority": "urgent"})
    assert ExpoPushBackend.secret_fields() == ("access_token",)


def test_the_templates_link_and_image_go_with_the_push(expo, db):
    """A push template's Link opens on tap (``data.url``) and its Image is shown with it
    (``richContent.image``), each rendered with the message's values."""
    channel = expo_channel(expo)
    template = channel.templates.get()
    template.link = "https://shop.example.com/orders/{{ order_id }}"
    template.image = "https://shop.example.com/parcels/{{ order_id }}.png"
    template.save()
    factories.template_publish_as_is(template)

    (message,) = notify_and_dispatch(channel, [{"push_token": token("ann")}])

    assert message.status == MessageStatus.SENT, message.last_error
    (pushed,) = expo.fake.pushed
    assert pushed["data"]["url"] == "https://shop.example.com/orders/A-7"
    assert pushed["richContent"] == {"image": "https://shop.example.com/parcels/A-7.png"}
    assert [f.label for f in ExpoPushBackend.template_fields] == ["Title", "Body", "Link", "Image"]
