"""Status webhooks: a real worker sends a message, and the endpoint (a local HTTP server)
receives a ``message.sent`` event signed per the Standard Webhooks spec (checked here by
recomputing the HMAC, and by the ``standardwebhooks`` package); a failing endpoint is retried
on the spec's schedule and every try is logged; with no endpoint, the send path does nothing
more."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from campaigns.api import notify
from campaigns.integrations.webhooks import (
    RETRY_DELAYS,
    deliveries_due,
    delivery_events_record,
    endpoint_test_send,
    sent_receive,
    url_problem,
)
from campaigns.jobs import sweep_pass
from campaigns.models import (
    Message,
    OptOut,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from campaigns.outbox.catalog import catalog, catalog_settled
from campaigns.tracking.delivery import delivery_events_apply
from channels.webhooks.base import DeliveryEvent
from tests import factories
from tests.channels.fakes import FakeServer, Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    with FakeServer(lambda request: Reply(204)) as server:
        yield server


@pytest.fixture
def shop(email_channel):
    event = factories.EventFactory(key="order-shipped")
    factories.TemplateFactory(event=event, channel=email_channel)
    return event


def endpoint_for(url: str, **fields) -> tuple[WebhookEndpoint, str]:
    endpoint = WebhookEndpoint(url=url, **fields)
    secret = endpoint.secret_rotate()
    endpoint.save()
    return endpoint, secret


def verify_by_hand(secret: str, request) -> dict:
    """The spec's check, written out: HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed with the
    base64-decoded secret after ``whsec_``, base64, after ``v1,``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = b".".join(
        [request.headers["webhook-id"].encode(), request.headers["webhook-timestamp"].encode()]
    )
    expected = base64.b64encode(
        hmac.new(key, signed + b"." + request.body, hashlib.sha256).digest()
    ).decode()
    version, _, signature = request.headers["webhook-signature"].partition(",")
    assert version == "v1"
    assert hmac.compare_digest(signature, expected)
    return json.loads(request.body)


def test_a_sent_message_reaches_the_endpoint_signed(shop, receiver, smtp, committed, run_worker):
    _, secret = endpoint_for(receiver.url + "/hooks/notifier")

    with committed():
        (message,) = notify(shop, {"email": "ann@example.com"}, {"order_id": "A-1"}).messages
    run_worker()

    assert len(smtp.messages) == 1
    (request,) = receiver.requests
    assert request.path == "/hooks/notifier"
    payload = verify_by_hand(secret, request)
    assert payload["type"] == "message.sent"
    assert payload["data"]["id"] == str(message.uuid)
    assert payload["data"]["event"] == "order-shipped"
    assert payload["data"]["channel"] == "email"
    assert payload["data"]["status"] == "sent"
    assert abs(int(request.headers["webhook-timestamp"]) - timezone.now().timestamp()) < 60
    # The reference library agrees.
    assert Webhook(secret).verify(request.body, request.headers)["type"] == "message.sent"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 204)
    assert delivery.webhook_id == request.headers["webhook-id"]
    (attempt,) = WebhookAttempt.objects.all()
    assert attempt.status_code == 204 and attempt.next_retry_at is None


def test_a_failing_endpoint_is_retried_with_backoff_and_every_try_logged(
    shop, smtp, committed, run_worker
):
    replies = [Reply(500, "database is down"), Reply(200, "ok")]
    with FakeServer(lambda request: replies.pop(0)) as receiver:
        endpoint_for(receiver.url, event_types=["message.sent"])
        with committed():
            notify(shop, {"email": "ann@example.com"}, {"order_id": "A-1"})
        run_worker()

        delivery = WebhookDelivery.objects.get()
        (failed,) = WebhookAttempt.objects.all()
        assert (delivery.state, delivery.attempts, delivery.last_status_code) == (
            "pending",
            1,
            500,
        )
        assert failed.response_excerpt == "database is down"
        assert failed.next_retry_at == delivery.next_attempt_at
        assert delivery.next_attempt_at - failed.at == dt.timedelta(seconds=RETRY_DELAYS[0])
        assert RETRY_DELAYS[:3] == (5, 300, 1800)
        # Not due yet: the sweep leaves it.
        with committed():
            assert deliveries_due() == 0

        later = delivery.next_attempt_at + dt.timedelta(seconds=1)
        WebhookDelivery.objects.update(next_attempt_at=timezone.now())  # its 5 s have passed
        with committed():
            sweep_pass(now=later)
        run_worker()

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert [(a.number, a.status_code) for a in WebhookAttempt.objects.order_by("number")] == [
        (1, 500),
        (2, 200),
    ]
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # the same event
    assert first.body == second.body


def test_an_endpoint_that_cannot_be_reached_is_logged_and_retried(shop, committed, run_worker):
    endpoint, _ = endpoint_for("http://127.0.0.1:9/nothing-listens")

    with committed():
        endpoint_test_send(endpoint)
    run_worker()

    (attempt,) = WebhookAttempt.objects.all()
    assert attempt.status_code is None
    assert "ConnectError" in attempt.error
    # A test event is tried once: the log shows the operator what went wrong.
    assert WebhookDelivery.objects.get().state == "failed"


def test_with_no_endpoint_the_send_path_records_nothing_and_asks_nothing(
    shop, smtp, committed, run_worker, django_assert_num_queries
):
    with committed():
        (message,) = notify(shop, {"email": "ann@example.com"}, {"order_id": "A-1"}).messages
    run_worker()
    catalog_settled()
    catalog()  # warm

    with django_assert_num_queries(0):
        sent_receive(sender=Message, messages=[message])
        delivery_events_record([message])
        assert deliveries_due() == 0

    assert WebhookDelivery.objects.count() == 0
    assert len(smtp.messages) == 1


def test_one_batch_is_one_insert_per_event_type(
    shop, receiver, committed, django_assert_num_queries
):
    endpoint_for(receiver.url)
    endpoint_for(receiver.url + "/second")
    with committed():
        result = notify(
            shop,
            [{"email": f"p{i}@example.com"} for i in range(20)],
            {"order_id": "A-1"},
        )
    catalog_settled()
    catalog()

    with django_assert_num_queries(1):
        sent_receive(sender=Message, messages=result.messages)

    assert WebhookDelivery.objects.count() == 40


def test_endpoints_hear_only_the_events_they_chose(shop, receiver, committed, run_worker):
    endpoint_for(receiver.url, event_types=["optout.created"])

    with committed():
        notify(shop, {"email": "ann@example.com"}, {"order_id": "A-1"})
        OptOut.objects.create(address="Bob@Example.com", reason="asked")
    run_worker()

    (request,) = receiver.requests
    payload = json.loads(request.body)
    assert payload["type"] == "optout.created"
    assert payload["data"]["address"] == "bob@example.com"
    assert payload["data"]["scope"] == "all"


def test_a_delivery_report_becomes_a_delivered_event(shop, receiver, smtp, committed, run_worker):
    endpoint_for(receiver.url, event_types=["message.delivered", "message.opened"])
    with committed():
        (message,) = notify(shop, {"email": "ann@example.com"}, {"order_id": "A-1"}).messages
    run_worker()
    message.refresh_from_db()

    with committed():
        delivery_events_apply(
            [DeliveryEvent(channel_key="", provider_id=message.provider_id, status="delivered")]
        )
        delivery_events_apply(
            [DeliveryEvent(channel_key="", provider_id=message.provider_id, status="opened")]
        )
    run_worker()

    assert [json.loads(r.body)["type"] for r in receiver.requests] == [
        "message.delivered",
        "message.opened",
    ]
    assert json.loads(receiver.requests[0].body)["data"]["id"] == str(message.uuid)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/hook", "must start with http:// or https://"),
        ("http://127.0.0.1:8000/hook", "private or reserved address (127.0.0.1)"),
        ("http://10.1.2.3/hook", "private or reserved address (10.1.2.3)"),
        ("http://[::1]/hook", "private or reserved address (::1)"),
        ("http://169.254.169.254/latest/meta-data", "private or reserved address"),
        ("https://user:pw@93.184.215.14/hook", "must not carry a user name or password"),
        ("https://93.184.215.14/hook", ""),
    ],
)
def test_private_addresses_are_refused_unless_allowed(settings, url, problem):
    settings.NOTIFIER = {**settings.NOTIFIER, "WEBHOOK_ALLOW_PRIVATE": False}

    found = url_problem(url)

    assert (problem in found) if problem else found == ""


def test_a_private_address_is_checked_again_before_each_post(
    settings, receiver, committed, run_worker
):
    endpoint, _ = endpoint_for(receiver.url)
    settings.NOTIFIER = {**settings.NOTIFIER, "WEBHOOK_ALLOW_PRIVATE": False}

    with committed():
        endpoint_test_send(endpoint)
    run_worker()

    assert receiver.requests == []
    assert "private or reserved address" in WebhookAttempt.objects.get().error


def test_the_sweep_hands_out_what_a_dead_job_held_once_its_lease_ran_out(receiver, committed):
    endpoint, _ = endpoint_for(receiver.url)
    with committed():
        delivery = endpoint_test_send(endpoint)
    now = timezone.now()
    WebhookDelivery.objects.update(lease_until=now + dt.timedelta(seconds=30))

    with committed():
        held = deliveries_due(now=now)
    with committed():
        lost = deliveries_due(now=now + dt.timedelta(seconds=31))

    assert (held, lost) == (0, 1)
    delivery.refresh_from_db()
    assert delivery.state == "pending"


def test_a_bounce_after_the_send_becomes_a_failed_event(
    shop, receiver, smtp, committed, run_worker
):
    """Sent, then bounced by the receiving server: the message failed, as far as a listener
    of ``message.failed`` is concerned."""
    endpoint_for(receiver.url, event_types=["message.failed"])
    with committed():
        (message,) = notify(shop, {"email": "ann@example.com"}, {"order_id": "A-1"}).messages
    run_worker()
    message.refresh_from_db()
    assert receiver.requests == []  # it was sent

    with committed():
        delivery_events_apply(
            [DeliveryEvent(channel_key="", provider_id=message.provider_id, status="bounced")]
        )
    run_worker()

    (request,) = receiver.requests
    payload = json.loads(request.body)
    assert payload["type"] == "message.failed"
    assert payload["data"]["id"] == str(message.uuid)
