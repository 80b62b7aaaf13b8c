"""The Web Push backend against a fake push service on 127.0.0.1 (``webpush_fake.py``): it
verifies the VAPID JWT, the encoding and headers, and decrypts each message with the
subscriber's private key, so these tests read the plaintext a browser would get."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.api import InvalidRecipient, notify
from campaigns.models import ChannelAddress, Message, MessageStatus
from channels.backends.base import AddressRejected, ConfigurationError
from channels.backends.webpush import WebPushBackend, b64url_encode, load_vapid_key
from channels.registry import backend_class

from ... import factories
from ..conftest import channel_with_event, dispatch_again, notify_and_dispatch
from ..fakes import Reply, json_reply
from ..webpush_fake import PRIVATE_PEM, PUBLIC_KEY, FakePushService, vapid_pem, verify_vapid

SUBJECT = "mailto:ops@example.com"


@pytest.fixture
def push(serve):
    service = FakePushService()
    server = serve(service)
    service.url = server.url
    server.fake = service
    return server


def subscriber(push, name: str, *, key: str | None = PUBLIC_KEY):
    return push.fake.subscribe(name, application_server_key=key)


def webpush_channel(**config):
    return channel_with_event(
        key="browser",
        backend="push.webpush",
        config={"vapid_private_key": PRIVATE_PEM, "vapid_subject": SUBJECT, **config},
    )


@pytest.mark.django_db(transaction=True)
def test_notify_pushes_through_rq_worker(push, run_worker):
    webpush_channel(urgency="high", ttl=3600)
    user = factories.UserFactory(first_name="Ann")
    ann = subscriber(push, "ann")
    ChannelAddress.objects.create(user=user, kind="webpush", address=ann.json)

    notify(
        "order-shipped",
        user,
        {"order_id": "A-7"},
        channels=["browser"],
        extra={"url": "/orders/A-7", "data": {"order": "A-7"}},
    )
    assert run_worker() == 1

    message = Message.objects.get()
    assert message.status == MessageStatus.SENT, message.last_error
    assert message.provider_id == f"{push.url}/m/msg-0001"
    (delivery,) = push.fake.delivered
    assert delivery.subscriber == "ann"
    assert delivery.payload == {
        "title": "Order A-7 shipped",
        "body": "Hello Ann, order A-7 is on its way.",
        "url": "/orders/A-7",
        "lang": "en",
        "data": {"notifier_id": str(message.uuid), "event": "order-shipped", "order": "A-7"},
    }
    assert (delivery.ttl, delivery.urgency) == (3600, "high")
    assert delivery.vapid_key == PUBLIC_KEY
    assert delivery.claims["aud"] == push.url and delivery.claims["sub"] == SUBJECT


def test_a_batch_reuses_one_connection_and_one_jwt(push, db):
    channel = webpush_channel()
    subscribers = [subscriber(push, f"s{i}") for i in range(4)]

    messages = notify_and_dispatch(channel, [{"webpush": s.json} for s in subscribers])

    assert [m.status for m in messages] == [MessageStatus.SENT] * 4
    assert [d.subscriber for d in push.fake.delivered] == ["s0", "s1", "s2", "s3"]
    assert {d.ttl for d in push.fake.delivered} == {86400}  # the default
    assert {d.urgency for d in push.fake.delivered} == {"normal"}  # no Urgency header
    assert push.connections == 1
    assert len({r.headers["authorization"] for r in push.requests}) == 1


def test_a_gone_subscription_is_deactivated_and_skipped_next_time(push, db):
    channel = webpush_channel()
    user = factories.UserFactory()
    gone = subscriber(push, "gone")
    gone.unsubscribed = True
    ChannelAddress.objects.create(user=user, kind="webpush", address=gone.json)

    (message,) = notify_and_dispatch(channel, user)

    assert message.status == MessageStatus.FAILED
    assert message.last_error.startswith("AddressRejected: Web Push HTTP 410: ")
    assert "gone" in message.last_error
    address = ChannelAddress.objects.get(kind="webpush")
    assert not address.is_active and "410" in address.deactivated_reason
    again = notify("order-shipped", user, {"order_id": "1"}, channels=["browser"])
    assert again.messages == [] and again.skipped[0].reason == "no address"
    assert push.fake.delivered == []


def test_an_unknown_endpoint_is_rejected(push, db):
    channel = webpush_channel()
    ann = subscriber(push, "ann").subscription
    unknown = {**ann, "endpoint": push.url + "/wpush/v2/never-issued"}

    (message,) = notify_and_dispatch(channel, {"webpush": json.dumps(unknown)})

    assert message.status == MessageStatus.FAILED
    assert message.last_error.startswith("AddressRejected: Web Push HTTP 404: ")
    assert not ChannelAddress.objects.get(kind="webpush").is_active


def test_429_waits_for_retry_after(push, db):
    channel = webpush_channel()
    ann = subscriber(push, "ann")
    push.script = [Reply(429, "Too Many Requests", {"Retry-After": "120"})]
    before = timezone.now()

    (message,) = notify_and_dispatch(channel, {"webpush": ann.json})

    assert message.status == MessageStatus.RETRYING
    assert message.last_error == "TransientError: Web Push HTTP 429: Too Many Requests"
    assert message.next_attempt_at >= before + dt.timedelta(seconds=120)
    assert push.fake.delivered == []

    (message,) = dispatch_again([message])
    assert message.status == MessageStatus.SENT
    assert push.fake.payloads("ann")[0]["title"] == "Order A-7 shipped"


def test_a_5xx_is_retried(push, db):
    channel = webpush_channel()
    ann = subscriber(push, "ann")
    push.script = [json_reply(500, {"code": 500, "errno": 999, "message": "internal error"})]

    (message,) = notify_and_dispatch(channel, {"webpush": ann.json})

    assert message.status == MessageStatus.RETRYING
    assert "Web Push HTTP 500: " in message.last_error and "internal error" in message.last_error


def test_413_fails_with_the_services_text(push, db):
    channel = webpush_channel()
    ann = subscriber(push, "ann")
    push.script = [Reply(413, "Payload Too Large: body is over 4096 bytes")]

    (message,) = notify_and_dispatch(channel, {"webpush": ann.json})

    assert message.status == MessageStatus.FAILED
    assert message.last_error == (
        "PermanentError: Web Push HTTP 413: Payload Too Large: body is over 4096 bytes"
    )
    assert ChannelAddress.objects.filter(is_active=False).count() == 0


def test_a_subscription_made_with_another_key_is_refused(push, db):
    channel = webpush_channel()
    _, other_public = vapid_pem()
    stranger = subscriber(push, "stranger", key=other_public)

    (message,) = notify_and_dispatch(channel, {"webpush": stranger.json})

    assert message.status == MessageStatus.FAILED
    assert message.last_error.startswith("PermanentError: Web Push HTTP 403: ")
    assert "VAPID public key mismatch" in message.last_error


def test_a_payload_over_the_limit_fails_without_a_request(push, db):
    channel = webpush_channel()
    ann = subscriber(push, "ann")

    (message,) = notify_and_dispatch(
        channel, {"webpush": ann.json}, extra={"data": {"blob": "x" * 5000}}
    )

    assert message.status == MessageStatus.FAILED
    assert "over the 3993-byte limit of Web Push" in message.last_error
    assert push.requests == []


def test_a_timeout_is_transient(push, db):
    channel = webpush_channel(timeout=0.3)
    ann = subscriber(push, "ann")
    push.script = [Reply(201, b"", delay=1.5)]

    (message,) = notify_and_dispatch(channel, {"webpush": ann.json})

    assert message.status == MessageStatus.RETRYING
    assert "no answer within 0.3s" in message.last_error


def test_malformed_subscriptions_are_refused_at_notify(push, db):
    webpush_channel()
    ann = subscriber(push, "ann").subscription
    cases = {
        "not json": "the push subscription is not valid JSON",
        json.dumps({"keys": ann["keys"]}): "has no endpoint",
        json.dumps({**ann, "endpoint": "http://push.example.com/x"}): "is not an https URL",
        json.dumps({"endpoint": ann["endpoint"]}): 'has no "keys"',
        json.dumps({**ann, "keys": {**ann["keys"], "p256dh": "abc"}}): "keys.p256dh",
        json.dumps({**ann, "keys": {**ann["keys"], "auth": "abc"}}): "keys.auth",
    }
    for address, problem in cases.items():
        with pytest.raises(InvalidRecipient, match=problem):
            notify("order-shipped", {"webpush": address}, {"order_id": "1"}, channels=["browser"])


def test_a_subscription_given_as_a_mapping(push, db):
    channel = webpush_channel()
    ann = subscriber(push, "ann")

    (message,) = notify_and_dispatch(channel, {"webpush": ann.subscription})

    assert message.status == MessageStatus.SENT
    assert json.loads(message.address) == {
        "endpoint": ann.endpoint,
        "keys": ann.subscription["keys"],
    }


def test_send_test(push):
    backend = WebPushBackend(
        options={"vapid_private_key": PRIVATE_PEM, "vapid_subject": "https://shop.example.com"}
    )
    ann = subscriber(push, "ann")

    assert backend.send_test(ann.json, subject="Test", text="It works") == f"{push.url}/m/msg-0001"
    assert push.fake.payloads("ann")[0]["body"] == "It works"
    gone = subscriber(push, "gone")
    gone.unsubscribed = True
    with pytest.raises(AddressRejected, match="HTTP 410"):
        backend.send_test(gone.json, text="It works")
    with pytest.raises(ValidationError, match=r"keys\.p256dh"):
        backend.send_test(json.dumps({**ann.subscription, "keys": {"p256dh": "x"}}), text="x")


def test_key_forms_and_options():
    key = ec.generate_private_key(ec.SECP256R1())
    raw = b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = b64url_encode(
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )
    for form in (raw, pem, pem.replace("\n", ""), pem.replace("\n", " ")):
        backend = WebPushBackend(options={"vapid_private_key": form, "vapid_subject": SUBJECT})
        assert backend.public_key == public
    WebPushBackend(
        options={"vapid_private_key": raw, "vapid_subject": SUBJECT, "vapid_public_key": public}
    )

    def refused(match: str, **options):
        with pytest.raises(ConfigurationError, match=match):
            WebPushBackend(options={"vapid_private_key": raw, "vapid_subject": SUBJECT, **options})

    refused("vapid_private_key: not a P-256 private key", vapid_private_key="secret")
    ed25519 = (
        "-----BEGIN PRIVATE KEY-----\n"
        "MC4CAQAwBQYDK2VwBCIEIHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0"
        "\n-----END PRIVATE KEY-----"
    )
    refused("not a P-256 \\(prime256v1\\) elliptic-curve", vapid_private_key=ed25519)
    refused("vapid_public_key: does not match the private key", vapid_public_key=PUBLIC_KEY)
    refused("vapid_subject: 'ops@example.com' is neither", vapid_subject="ops@example.com")
    refused("is not a valid mailto: address", vapid_subject="mailto:nobody")
    refused("is not a valid https: URL", vapid_subject="https://")
    refused("urgency", urgency="urgent")
    refused("ttl", ttl=-1)
    assert WebPushBackend.secret_fields() == ("vapid_private_key",)
    assert backend_class("push.webpush") is WebPushBackend


def test_the_fake_push_service_checks_what_the_rfcs_ask(push):
    """The fake refuses what a push service refuses, so the tests above can fail."""
    vapid = load_vapid_key(PRIVATE_PEM)
    now = int(time.time())

    def header(**claims) -> str:
        return vapid.sign({"aud": push.url, "exp": now + 3600, "sub": SUBJECT, **claims})[
            "Authorization"
        ]

    other = load_vapid_key(vapid_pem()[0])
    forged = other.sign({"aud": push.url, "exp": now + 3600, "sub": SUBJECT})["Authorization"]
    claims, key = verify_vapid(header(), push.url)
    assert (claims["aud"], key) == (push.url, PUBLIC_KEY)
    for bad, problem in [
        (header(aud="https://push.example.net"), "is not this push service"),
        (header(exp=now - 10), "is not within the next 24 hours"),
        (header(exp=now + 2 * 86400), "is not within the next 24 hours"),
        (header().replace("k=", "k=" + PUBLIC_KEY[:4]), "malformed JWT or key"),
        (forged.split(",k=")[0] + ",k=" + PUBLIC_KEY, "does not verify with k"),
        ("WebPush abc", "no 'Authorization: vapid"),
    ]:
        with pytest.raises(ValueError, match=problem):
            verify_vapid(bad, push.url)

    ann = subscriber(push, "ann")
    plain = requests.post(
        ann.endpoint, data=b"hello", headers={"Authorization": header(), "TTL": "60"}, timeout=5
    )
    assert (plain.status_code, plain.text) == (400, "Content-Encoding None")
    assert push.fake.delivered == []
