"""The admin of service API keys and status webhooks: a new key and a new endpoint's secret
are shown once after saving; only superusers make them (Support may read the delivery log);
a key is revoked, never deleted; "send test event" POSTs a signed event."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group

from campaigns.integrations.servicekeys import service_key_authenticate
from campaigns.models import ServiceKey, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests import factories
from tests.channels.fakes import FakeServer, Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@x.io", "pw")
    client.force_login(user)
    return user


def staff(client, django_user_model, role: str):
    user = django_user_model.objects.create_user(role.lower(), f"{role}@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


def shown(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_a_new_key_is_shown_once_and_works_with_its_scopes(client, superuser):
    event = factories.EventFactory(key="order-shipped")

    response = client.post(
        "/admin/campaigns/servicekey/add/",
        {
            "name": "shop",
            "rate_limit": "60",
            "can_trigger": "on",
            "events": [event.pk],
            "can_read_messages": "on",
        },
        follow=True,
    )

    assert response.status_code == 200
    (notice,) = [m for m in shown(response) if "copy it now" in m]
    raw = re.search(r"nsk_[\w-]+", notice).group()
    key = ServiceKey.objects.get()
    assert service_key_authenticate(raw) == key
    assert (key.created_by, key.prefix) == (superuser, raw[:12])
    assert list(key.events.all()) == [event]
    assert raw not in client.get(f"/admin/campaigns/servicekey/{key.pk}/change/").content.decode()
    assert raw not in key.key_hash

    client.post(
        "/admin/campaigns/servicekey/",
        {"action": "revoke_selected", "_selected_action": [key.pk]},
    )

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert service_key_authenticate(raw) is None
    assert client.get(f"/admin/campaigns/servicekey/{key.pk}/delete/").status_code == 403


def test_an_endpoint_secret_is_shown_once_then_only_to_superusers(
    client, superuser, django_user_model
):
    with FakeServer(lambda request: Reply(200, "ok")) as receiver:
        response = client.post(
            "/admin/campaigns/webhookendpoint/add/",
            {
                "url": receiver.url + "/hook",
                "description": "CRM",
                "event_types": ["message.sent", "message.failed"],
                "is_active": "on",
            },
            follow=True,
        )
        (notice,) = [m for m in shown(response) if "whsec_" in m]
        endpoint = WebhookEndpoint.objects.get()
        assert endpoint.secret in notice
        assert endpoint.event_types == ["message.sent", "message.failed"]
        assert endpoint.secret not in str(endpoint.secret_encrypted)  # encrypted at rest
        page = client.get(f"/admin/campaigns/webhookendpoint/{endpoint.pk}/change/")
        assert endpoint.secret in page.content.decode()

        client.post(
            "/admin/campaigns/webhookendpoint/",
            {"action": "send_test_event", "_selected_action": [endpoint.pk]},
        )

    delivery = WebhookDelivery.objects.get()
    assert delivery.event_type == "webhook.test"
    assert WebhookDelivery.objects.filter(state="pending").count() == 1  # a job sends it
    staff(client, django_user_model, "Support")
    page = client.get(f"/admin/campaigns/webhookendpoint/{endpoint.pk}/change/")
    assert page.status_code == 200
    assert endpoint.secret not in page.content.decode()
    assert client.get(f"/admin/campaigns/webhookdelivery/{delivery.pk}/change/").status_code == 200


def test_send_test_event_reaches_the_endpoint_through_a_worker(
    client, superuser, committed, run_worker
):
    with FakeServer(lambda request: Reply(200, "ok")) as receiver:
        endpoint = WebhookEndpoint(url=receiver.url)
        endpoint.secret_rotate()
        endpoint.save()
        with committed():
            client.post(
                "/admin/campaigns/webhookendpoint/",
                {"action": "send_test_event", "_selected_action": [endpoint.pk]},
            )
        run_worker()

        (request,) = receiver.requests
    assert b'"type":"webhook.test"' in request.body
    assert WebhookAttempt.objects.get().status_code == 200
    log = client.get("/admin/campaigns/webhookdelivery/").content.decode()
    assert "webhook.test" in log


@pytest.mark.parametrize(
    ("url", "problem"),
    [("ftp://example.com/x", "http"), ("http://10.0.0.7/x", "private or reserved address")],
)
def test_the_endpoint_form_refuses_other_schemes_and_private_addresses(
    client, superuser, settings, url, problem
):
    settings.NOTIFIER = {**settings.NOTIFIER, "WEBHOOK_ALLOW_PRIVATE": False}

    response = client.post("/admin/campaigns/webhookendpoint/add/", {"url": url, "is_active": "on"})

    assert response.status_code == 200
    assert problem in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize("role", ["Support", "Marketing"])
def test_no_role_makes_keys_or_endpoints(client, django_user_model, role):
    staff(client, django_user_model, role)

    assert client.get("/admin/campaigns/servicekey/").status_code == 403
    assert client.get("/admin/campaigns/servicekey/add/").status_code == 403
    assert client.get("/admin/campaigns/webhookendpoint/add/").status_code == 403
    expected = 200 if role == "Support" else 403  # Support reads the delivery log
    assert client.get("/admin/campaigns/webhookdelivery/").status_code == expected
    assert client.get("/admin/campaigns/webhookendpoint/").status_code == expected
