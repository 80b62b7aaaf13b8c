"""The HTTP API for services, driven over HTTP (``live_server`` and httpx) with nothing but a
service key: a notification triggered, sent by a real RQ worker to the SMTP sink, and looked
up as sent; scopes, revoked keys, idempotency, rate limits and malformed requests answered
with JSON naming the problem; and the OpenAPI schema valid."""

from __future__ import annotations

import json

import httpx
import pytest
from django.test import Client
from openapi_spec_validator import validate

from campaigns.models import Message, NotifyRequest, OptOut, ServiceKey
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(transactional_db, email_channel):
    """An event with a published email template, and the email channel on the SMTP sink."""
    event = factories.EventFactory(key="order-shipped")
    factories.TemplateFactory(event=event, channel=email_channel)
    return event


@pytest.fixture
def client(live_server):
    with httpx.Client(base_url=f"{live_server.url}/api/v1", timeout=20) as http:
        yield http


def key(**scopes) -> str:
    _, raw = ServiceKey.generate(name="shop", **scopes)
    return raw


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


ORDER = {
    "event": "order-shipped",
    "recipients": [{"email": "ann@example.com", "name": "Ann"}],
    "context": {"order_id": "A-17"},
}


def test_a_service_triggers_a_notification_that_a_worker_sends_then_sees_it_sent(
    shop, client, smtp, run_worker
):
    raw = key(can_trigger=True, all_events=True, can_read_messages=True)

    answer = client.post("/notifications", json=ORDER, headers=bearer(raw))

    assert answer.status_code == 202, answer.text
    (message,) = answer.json()["messages"]
    assert message["status"] == "queued"
    assert (message["event"], message["channel"], message["address"]) == (
        "order-shipped",
        "email",
        "ann@example.com",
    )
    assert run_worker() >= 1
    (mail,) = smtp.messages
    assert mail["To"] == "ann@example.com"
    assert "A-17" in mail["Subject"]

    looked_up = client.get(f"/messages/{message['id']}", headers={"X-API-Key": raw})

    assert looked_up.status_code == 200, looked_up.text
    assert looked_up.json()["status"] == "sent"
    assert looked_up.json()["sent_at"]
    assert ServiceKey.objects.get().last_used_at is not None


def test_scopes_refuse_what_a_key_may_not_do(shop, client):
    limited = client.post(
        "/notifications",
        json=ORDER,
        headers={"X-API-Key": ServiceKey.generate(name="x", can_trigger=True)[1]},
    )
    reader = key(can_read_messages=True)
    trigger_only = key(can_trigger=True, all_events=True)

    assert limited.status_code == 403
    assert limited.json() == {
        "error": "forbidden",
        "detail": "this key may not trigger event 'order-shipped'",
        "event": "order-shipped",
    }
    no_trigger = client.post("/notifications", json=ORDER, headers=bearer(reader))
    assert (no_trigger.status_code, no_trigger.json()["detail"]) == (
        403,
        "this key may not send notifications",
    )
    no_read = client.get("/messages", params={"user_id": 1}, headers=bearer(trigger_only))
    assert (no_read.status_code, no_read.json()["detail"]) == (
        403,
        "this key may not read messages",
    )
    no_optouts = client.get("/optouts", params={"user_id": 1}, headers=bearer(reader))
    assert (no_optouts.status_code, no_optouts.json()["detail"]) == (
        403,
        "this key may not manage opt-outs",
    )
    assert Message.objects.count() == 0


def test_a_key_limited_to_some_events_triggers_those(shop, client, email_channel):
    delivered = factories.EventFactory(key="order-delivered")
    factories.TemplateFactory(event=delivered, channel=email_channel)
    _, raw = ServiceKey.generate(name="courier", can_trigger=True, events=[delivered])

    answer = client.post(
        "/notifications", json={**ORDER, "event": "order-delivered"}, headers=bearer(raw)
    )
    refused = client.post("/notifications", json=ORDER, headers=bearer(raw))

    assert answer.status_code == 202, answer.text
    assert Message.objects.get().event == delivered
    assert refused.status_code == 403


def test_a_revoked_or_wrong_key_gets_401(shop, client):
    service, raw = ServiceKey.generate(name="shop", can_trigger=True, all_events=True)
    service.revoked_at = service.created_at
    service.save(update_fields=["revoked_at"])

    revoked = client.post("/notifications", json=ORDER, headers=bearer(raw))
    wrong = client.post("/notifications", json=ORDER, headers=bearer(raw[:-2] + "xx"))
    missing = client.post("/notifications", json=ORDER)

    for answer in (revoked, wrong, missing):
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthenticated"
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert Message.objects.count() == 0


def test_the_same_idempotency_key_and_body_answer_the_first_result(shop, client, smtp, run_worker):
    raw = key(can_trigger=True, all_events=True, can_read_messages=True)
    headers = {**bearer(raw), "Idempotency-Key": "order-A-17-shipped"}

    first = client.post("/notifications", json=ORDER, headers=headers)
    run_worker()
    again = client.post("/notifications", json=ORDER, headers=headers)
    other = client.post(
        "/notifications", json={**ORDER, "context": {"order_id": "B-2"}}, headers=headers
    )

    assert first.status_code == again.status_code == 202
    assert [m["id"] for m in again.json()["messages"]] == [
        m["id"] for m in first.json()["messages"]
    ]
    assert again.json()["messages"][0]["status"] == "sent"
    assert len(smtp.messages) == 1
    assert Message.objects.count() == 1
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_conflict"
    assert "different body" in other.json()["detail"]
    listed = client.get(
        "/messages", params={"idempotency_key": "order-A-17-shipped"}, headers=bearer(raw)
    )
    assert [m["id"] for m in listed.json()["messages"]] == [
        m["id"] for m in first.json()["messages"]
    ]
    assert listed.json()["messages"][0]["idempotency_key"] == "order-A-17-shipped"
    # Another service's key with the same Idempotency-Key is another request.
    assert NotifyRequest.objects.get().key.startswith("api:nsk_")


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(shop, client):
    _, raw = ServiceKey.generate(name="shop", can_read_messages=True, rate_limit=3)

    answers = [
        client.get("/messages", params={"user_id": 5}, headers=bearer(raw)) for _ in range(4)
    ]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["error"] == "rate_limited"
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
    other = client.get(
        "/messages", params={"user_id": 5}, headers=bearer(key(can_read_messages=True))
    )
    assert other.status_code == 200  # per key


@pytest.mark.parametrize(
    ("body", "status", "error", "names"),
    [
        ({**ORDER, "event": "no-such-event"}, 404, "unknown_event", "no-such-event"),
        ({**ORDER, "context": {}}, 422, "missing_variables", "order_id"),
        (
            {**ORDER, "recipients": [{"email": "ann@example.com", "user_id": "x"}]},
            400,
            "invalid_recipient",
            "recipient #1",
        ),
        ({**ORDER, "recipients": "ann@example.com"}, 422, "invalid_request", "recipients"),
        ({**ORDER, "channels": ["carrier-pigeon"]}, 422, "unknown_channel", "carrier-pigeon"),
        (
            {**ORDER, "scheduled_at": "2030-01-01T10:00:00"},
            422,
            "invalid_argument",
            "timezone-aware",
        ),
        ({**ORDER, "send_at": "now"}, 422, "invalid_request", "send_at"),
    ],
    ids=[
        "unknown-event",
        "missing-variables",
        "bad-recipient",
        "recipients-not-a-list",
        "unknown-channel",
        "naive-time",
        "unknown-option",
    ],
)
def test_a_bad_request_is_json_naming_the_problem(shop, client, body, status, error, names):
    raw = key(can_trigger=True, all_events=True)

    answer = client.post("/notifications", json=body, headers=bearer(raw))

    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error
    assert names in answer.json()["detail"]
    assert Message.objects.count() == 0
    if error == "missing_variables":
        assert answer.json()["missing"] == ["order_id"]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "nested deeper than 32 levels"),
        (b'{"event": ', "is not valid JSON"),
        (b"[]", "must be an object"),
        (b'{"event": "\xff"}', "is not UTF-8"),
    ],
    ids=["deep", "cut", "array", "not-utf8"],
)
def test_malformed_json_is_a_400_naming_the_problem(shop, client, raw, problem):
    answer = client.post(
        "/notifications",
        content=raw,
        headers={
            **bearer(key(can_trigger=True, all_events=True)),
            "Content-Type": "application/json",
        },
    )

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_json"
    assert problem in answer.json()["detail"]


def test_opt_outs_are_listed_made_and_revoked(shop, client, django_user_model, smtp, run_worker):
    ann = django_user_model.objects.create_user("ann", "ann@example.com")
    raw = key(can_manage_optouts=True, can_trigger=True, all_events=True)

    made = client.post(
        "/optouts",
        json={"user_id": ann.pk, "event": "order-shipped", "reason": "asked by phone"},
        headers=bearer(raw),
    )
    again = client.post(
        "/optouts", json={"user_id": ann.pk, "event": "order-shipped"}, headers=bearer(raw)
    )
    listed = client.get("/optouts", params={"user_id": ann.pk}, headers=bearer(raw))
    skipped = client.post(
        "/notifications",
        json={**ORDER, "recipients": [{"user_id": ann.pk, "email": "ann@example.com"}]},
        headers=bearer(raw),
    )

    assert made.status_code == 201, made.text
    assert made.json()["scope"] == "event" and made.json()["active"] is True
    assert made.json()["source"] == "api"
    assert (again.status_code, again.json()["id"]) == (200, made.json()["id"])
    assert [o["id"] for o in listed.json()["optouts"]] == [made.json()["id"]]
    assert skipped.json()["messages"] == []
    assert skipped.json()["skipped"][0]["reason"] == "opted out"

    revoked = client.post(f"/optouts/{made.json()['id']}/revoke", headers=bearer(raw))

    assert revoked.status_code == 200
    assert revoked.json()["active"] is False
    assert OptOut.objects.active().count() == 0
    assert client.get("/optouts", params={"user_id": ann.pk}, headers=bearer(raw)).json() == {
        "optouts": []
    }
    unknown = client.post(
        "/optouts", json={"address": "x@example.com", "channel": "fax"}, headers=bearer(raw)
    )
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_channel")


def test_the_openapi_schema_is_served_and_valid(client):
    answer = client.get("/openapi.json")

    assert answer.status_code == 200
    schema = answer.json()
    validate(schema)
    assert {"/api/v1/notifications", "/api/v1/messages/{message_id}", "/api/v1/optouts"} <= set(
        schema["paths"]
    )
    assert json.dumps(schema).count("nsk_") >= 1  # the description tells how to authenticate


def test_a_trigger_costs_the_key_lookup_and_notify_s_own_queries(shop, django_assert_num_queries):
    """With a warm catalog and a key used within the minute: one query finds the key, and
    notify() for one recipient costs what it costs from Python (the facts: users, addresses
    and opt-outs in one query; the INSERT). Rate limiting is Redis only; a key for all events
    reads no event list."""
    raw = key(can_trigger=True, all_events=True)
    http = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert (
        http.post("/api/v1/notifications", ORDER, "application/json", **headers).status_code == 202
    )

    with django_assert_num_queries(3) as captured:
        answer = http.post("/api/v1/notifications", ORDER, "application/json", **headers)

    assert answer.status_code == 202
    assert 'FROM "campaigns_servicekey"' in captured.captured_queries[0]["sql"]
