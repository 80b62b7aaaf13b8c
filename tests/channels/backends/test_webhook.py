"""The webhook backend against a receiver on 127.0.0.1 that verifies each request with the
snippet published in docs/adding-a-channel.md: the Standard Webhooks library, as any
receiver would use it."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import re
import time

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from campaigns.api import notify
from campaigns.models import Message, MessageStatus
from channels.backends.base import ConfigurationError, PermanentError
from channels.backends.webhook import WebhookBackend

from ... import factories
from ...conftest import ROOT
from ..conftest import channel_with_event, dispatch_again, notify_and_dispatch
from ..fakes import Reply, Request, json_reply

SECRET = "whsec-0123456789abcdef"


def doc_snippet() -> dict:
    """The verification snippet exactly as docs/adding-a-channel.md publishes it."""
    doc = (ROOT / "docs" / "adding-a-channel.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.DOTALL)
    (snippet,) = [b for b in blocks if "def notifier_verifier" in b]
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 - our own documentation
    return namespace


notifier_verifier = doc_snippet()["notifier_verifier"]


def verified(secret: str, request) -> dict | None:
    """The payload when the receiver of ``secret`` accepts the request, else None."""
    try:
        return notifier_verifier(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return None


class Receiver:
    """A host site's webhook endpoint: verifies, records, answers with its own id."""

    def __init__(self, secret: str = SECRET):
        self.secret = secret
        self.accepted: list[dict] = []

    def __call__(self, request) -> Reply:
        assert request.method == "POST" and request.path == "/hooks/notifier"
        assert request.headers["content-type"] == "application/json"
        payload = verified(self.secret, request)
        if payload is None:
            return json_reply(401, {"error": "bad signature"})
        assert payload["id"] == request.headers["webhook-id"]
        if request.scripted:
            return Reply(204)
        self.accepted.append(payload)
        return json_reply(200, {"id": f"rcv-{len(self.accepted)}"})


@pytest.fixture
def receiver(serve):
    handler = Receiver()
    server = serve(handler)
    server.receiver = handler
    return server


def webhook_channel(server, **config):
    return channel_with_event(
        key="hooks",
        backend="webhook",
        config={"url": f"{server.url}/hooks/notifier", "secret": SECRET, **config},
    )


@pytest.mark.django_db(transaction=True)
def test_notify_posts_signed_json_through_rq_worker(receiver, run_worker):
    webhook_channel(receiver)
    user = factories.UserFactory(first_name="Ann")

    result = notify("order-shipped", user, {"order_id": "<A-7>"}, channels=["hooks"])
    assert run_worker() == 1

    message = Message.objects.get()
    assert (message.status, message.provider_id) == (MessageStatus.SENT, "rcv-1")
    assert message.address == str(user.pk) == result.messages[0].address
    (payload,) = receiver.receiver.accepted
    assert payload["id"] == str(message.uuid)
    assert payload["event"] == "order-shipped"
    assert payload["address"] == str(user.pk)
    assert payload["recipient"]["user_id"] == user.pk
    assert payload["subject"] == "Order <A-7> shipped"
    assert payload["text"] == "Hello Ann, order <A-7> is on its way."
    assert payload["html"] == "<p>Order <b>&lt;A-7&gt;</b></p>"
    assert payload["language"] == "en"


def test_the_documented_snippet_refuses_forged_and_replayed_requests(serve, db):
    seen = []
    server = serve(lambda request: seen.append(request) or json_reply(200, {}))
    backend = WebhookBackend(options={"url": f"{server.url}/h", "secret": SECRET})
    outgoing = backend.send_test("42", subject="Hi", text="Test")
    (request,) = seen
    headers = request.headers
    assert outgoing == "" and re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", headers["webhook-signature"])
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert verified(SECRET, request)["subject"] == "Hi"
    # The same key written as a Standard Webhooks secret.
    assert verified("whsec_" + base64.b64encode(SECRET.encode()).decode(), request)

    def forged(**changes) -> Request:
        return dataclasses.replace(request, **changes)

    assert verified(SECRET, forged(body=request.body + b" ")) is None
    assert verified("another-secret-xx", request) is None
    later = str(int(headers["webhook-timestamp"]) + 1)
    assert verified(SECRET, forged(headers={**headers, "webhook-timestamp": later})) is None
    assert verified(SECRET, forged(headers={**headers, "webhook-id": "other"})) is None
    missing = {k: v for k, v in headers.items() if k != "webhook-signature"}
    assert verified(SECRET, forged(headers=missing)) is None
    # A request signed an hour ago, replayed now, is refused though its signature is right.
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    body = request.body.decode()
    replayed = {
        **headers,
        "webhook-timestamp": str(int(old.timestamp())),
        "webhook-signature": Webhook(SECRET.encode()).sign(headers["webhook-id"], old, body),
    }
    assert verified(SECRET, forged(headers=replayed)) is None


def test_a_standard_webhooks_secret_signs_with_its_base64_key(serve, db):
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    server = serve(Receiver(secret))
    backend = WebhookBackend(options={"url": f"{server.url}/hooks/notifier", "secret": secret})

    assert backend.send_test("42", text="Hi") == "rcv-1"
    assert verified(base64.b64encode(bytes(range(32))).decode(), server.requests[0]) is None


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("short", "at least 16 characters"),
        ("whsec_not*base64!!!!!!!!", "whsec_ followed by the key in base64"),
        ("whsec_" + base64.b64encode(b"8 bytes!").decode(), "at least 16 bytes (this one has 8)"),
    ],
)
def test_a_secret_that_cannot_sign_is_refused(secret, problem):
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        WebhookBackend(options={"url": "https://example.com/h", "secret": secret})


def test_a_batch_reuses_one_connection(receiver, db):
    channel = webhook_channel(receiver, address_key="account")
    recipients = [{"name": f"P{i}", "account": f"acc-{i}"} for i in range(5)]

    messages = notify_and_dispatch(channel, recipients)

    assert [m.status for m in messages] == [MessageStatus.SENT] * 5
    assert [m.provider_id for m in messages] == [f"rcv-{i}" for i in range(1, 6)]
    assert [p["address"] for p in receiver.receiver.accepted] == [f"acc-{i}" for i in range(5)]
    assert len(receiver.requests) == 5
    assert receiver.connections == 1
    assert {r.connection for r in receiver.requests} == {1}


def test_a_4xx_answer_fails_at_once_with_the_receivers_text(receiver, db):
    channel = webhook_channel(receiver, address_key="account")
    receiver.script = [Reply(422, "unknown account acc-1")]

    (message,) = notify_and_dispatch(channel, {"account": "acc-1"})

    assert (message.status, message.attempts) == (MessageStatus.FAILED, 1)
    assert message.last_error == "PermanentError: Webhook HTTP 422: unknown account acc-1"


def test_a_5xx_answer_is_retried_and_then_sent(receiver, db):
    channel = webhook_channel(receiver, address_key="account")
    receiver.script = [Reply(503, "<h1>upstream unavailable</h1>")]

    (message,) = notify_and_dispatch(channel, {"account": "acc-1"})
    assert message.status == MessageStatus.RETRYING
    assert "Webhook HTTP 503: <h1>upstream unavailable</h1>" in message.last_error

    (message,) = dispatch_again([message])
    assert (message.status, message.attempts, message.provider_id) == ("sent", 2, "rcv-1")
    assert message.last_error == ""


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_respected(receiver, db, status):
    channel = webhook_channel(receiver, address_key="account")
    receiver.script = [Reply(status, "slow down", {"Retry-After": "120"})]
    before = timezone.now()

    (message,) = notify_and_dispatch(channel, {"account": "acc-1"})

    assert message.status == MessageStatus.RETRYING
    assert message.next_attempt_at >= before + dt.timedelta(seconds=120)


def test_retry_after_as_an_http_date(receiver, db):
    channel = webhook_channel(receiver, address_key="account")
    later = timezone.now() + dt.timedelta(minutes=10)
    receiver.script = [Reply(429, "", {"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")})]

    (message,) = notify_and_dispatch(channel, {"account": "acc-1"})

    assert message.next_attempt_at >= later - dt.timedelta(seconds=2)


def test_no_answer_within_the_timeout_is_transient(receiver, db):
    channel = webhook_channel(receiver, address_key="account", timeout=0.3)
    receiver.script = [Reply(200, "{}", delay=1.5)]
    started = time.monotonic()

    (message,) = notify_and_dispatch(channel, {"account": "acc-1"})

    assert time.monotonic() - started < 1.4
    assert message.status == MessageStatus.RETRYING
    assert message.last_error == "TransientError: Webhook: no answer within 0.3s (ReadTimeout)"


def test_a_redirect_is_not_followed(receiver, db):
    channel = webhook_channel(receiver, address_key="account")
    receiver.script = [Reply(301, "", {"Location": "https://elsewhere.example/"})]

    (message,) = notify_and_dispatch(channel, {"account": "acc-1"})

    assert message.status == MessageStatus.FAILED
    assert len(receiver.requests) == 1


def test_an_unreachable_receiver_is_transient(db):
    channel = channel_with_event(
        key="hooks",
        backend="webhook",
        config={"url": "http://127.0.0.1:9/nowhere", "secret": SECRET, "address_key": "a"},
    )
    (message,) = notify_and_dispatch(channel, {"a": "x"})
    assert message.status == MessageStatus.RETRYING
    assert "connection failed (ConnectError" in message.last_error


def test_send_test(receiver, db):
    backend = WebhookBackend(
        channel_key="hooks", options={"url": f"{receiver.url}/hooks/notifier", "secret": SECRET}
    )
    assert backend.send_test("42", subject="Test", text="It works") == "rcv-1"
    (payload,) = receiver.receiver.accepted
    assert (payload["address"], payload["subject"], payload["text"]) == ("42", "Test", "It works")

    receiver.script = [Reply(400, "nope")]
    with pytest.raises(PermanentError, match="Webhook HTTP 400: nope"):
        backend.send_test("42", text="again")


def test_options_are_validated_and_the_secret_masked(receiver, db):
    with pytest.raises(ConfigurationError, match="secret: Ensure this value has at least 16"):
        WebhookBackend(options={"url": "https://example.com/h", "secret": "short"})
    with pytest.raises(ConfigurationError, match="url"):
        WebhookBackend(options={"url": "not a url", "secret": SECRET})
    with pytest.raises(ConfigurationError, match="unknown option"):
        WebhookBackend(options={"url": "https://example.com/h", "secret": SECRET, "x": 1})
    channel = webhook_channel(receiver)
    assert channel.masked_config()["secret"] != SECRET
    assert json.dumps(channel.masked_config()).count(SECRET) == 0


def test_a_json_body_template_arrives_as_json_with_its_values_escaped(receiver, db):
    """The webhook's template is a JSON document; a value with quotes, backslashes and a
    newline stays one JSON string, and the receiver gets the document parsed as ``body``."""
    channel = webhook_channel(receiver)
    template = channel.templates.get()
    template.json_body = (
        '{"order": "{{ order_id }}", "who": "{{ recipient.name }}", "n": {{ recipient.n }}}'
    )
    template.save()
    factories.template_publish_as_is(template)

    user = factories.UserFactory()
    (message,) = notify_and_dispatch(
        channel, [{"user_id": user.pk, "name": 'Ann "the\\admin"\nB', "n": 3}], order_id="<A-7>"
    )

    assert message.status == MessageStatus.SENT, message.last_error
    (payload,) = receiver.receiver.accepted
    assert payload["body"] == {"order": "<A-7>", "who": 'Ann "the\\admin"\nB', "n": 3}


def test_the_webhook_declares_a_json_body_as_its_template():
    assert [(f.name, f.kind, f.required) for f in WebhookBackend.template_fields] == [
        ("body", "json", True)
    ]
