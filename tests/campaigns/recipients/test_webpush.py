"""Browser notifications on the end users' side: the inbox offers them when a Web Push channel
is active, the service worker is served at the root, and the page's subscription endpoints
(login and CSRF required) store a user's subscription as their ``webpush`` address."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from campaigns.models import ChannelAddress
from tests import factories
from tests.channels.webpush_fake import PRIVATE_PEM, PUBLIC_KEY, Subscriber

pytestmark = pytest.mark.django_db

SUBSCRIBE, UNSUBSCRIBE = "/webpush/subscription/", "/webpush/unsubscribe/"


def browser_subscription(name: str = "ann", host: str = "https://push.example.net"):
    return Subscriber(name, f"{host}/wpush/v2/{name}", PUBLIC_KEY)


@pytest.fixture
def channel():
    return factories.ChannelFactory(
        key="browser",
        backend="push.webpush",
        config={"vapid_private_key": PRIVATE_PEM, "vapid_subject": "mailto:ops@example.com"},
    )


def signed_in(user) -> tuple[Client, str]:
    """A client with CSRF checks on, signed in as ``user``, and its CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/inbox/")
    return client, client.cookies["csrftoken"].value


def post(client: Client, url: str, body, token: str | None):
    headers = {"X-CSRFToken": token} if token else {}
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(url, data, content_type="application/json", headers=headers)


def test_the_inbox_offers_browser_notifications_with_an_active_channel(channel):
    client, _ = signed_in(factories.UserFactory())

    page = client.get("/inbox/").content.decode()
    assert 'id="webpush"' in page
    assert f'data-public-key="{PUBLIC_KEY}"' in page
    assert "Enable browser notifications" in page and "notifier/webpush.js" in page

    channel.is_active = False
    channel.save(update_fields=["is_active"])
    assert 'id="webpush"' not in client.get("/inbox/").content.decode()


def test_no_offer_without_a_webpush_channel():
    factories.memory_channel()
    client, _ = signed_in(factories.UserFactory())
    assert 'id="webpush"' not in client.get("/inbox/").content.decode()


def test_the_service_worker_is_served_at_the_root(client):
    response = client.get("/sw.js")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Service-Worker-Allowed"] == "/"
    body = response.content.decode()
    assert 'addEventListener("push"' in body and 'addEventListener("notificationclick"' in body
    assert 'const DEFAULT_URL = "/inbox/";' in body
    assert "{%" not in body


def test_registering_needs_a_signed_in_user(channel):
    client = Client(enforce_csrf_checks=True)
    client.get("/accounts/login/")
    token = client.cookies["csrftoken"].value

    response = post(client, SUBSCRIBE, browser_subscription().subscription, token)

    assert response.status_code == 401
    assert response.json() == {"error": "log in to enable browser notifications"}
    assert not ChannelAddress.objects.exists()


def test_registering_needs_the_csrf_token(channel):
    client, token = signed_in(factories.UserFactory())
    subscription = browser_subscription().subscription

    assert post(client, SUBSCRIBE, subscription, None).status_code == 403
    assert post(client, SUBSCRIBE, subscription, "x" * 32).status_code == 403
    assert not ChannelAddress.objects.exists()
    assert post(client, SUBSCRIBE, subscription, token).status_code == 200
    assert ChannelAddress.objects.count() == 1
    assert client.get(SUBSCRIBE).status_code == 405


def test_registering_is_idempotent_per_endpoint(channel):
    user = factories.UserFactory()
    client, token = signed_in(user)
    ann = browser_subscription()

    first = post(client, SUBSCRIBE, ann.subscription, token)
    again = post(client, SUBSCRIBE, ann.subscription, token)

    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    (address,) = ChannelAddress.objects.all()
    assert (address.user, address.kind, address.is_active) == (user, "webpush", True)
    assert json.loads(address.address) == {
        "endpoint": ann.endpoint,
        "keys": ann.subscription["keys"],
    }

    # the provider said it was gone; the browser subscribed again with new keys
    ChannelAddress.objects.update(is_active=False, deactivated_reason="Web Push HTTP 410")
    renewed = Subscriber("ann", ann.endpoint, PUBLIC_KEY)
    assert post(client, SUBSCRIBE, renewed.json, token).status_code == 200

    (address,) = ChannelAddress.objects.all()
    assert address.is_active and address.deactivated_reason == ""
    assert json.loads(address.address)["keys"] == renewed.subscription["keys"]


def test_users_change_only_their_own_subscriptions(channel):
    ann, bob = factories.UserFactory(), factories.UserFactory()
    ann_client, ann_token = signed_in(ann)
    bob_client, bob_token = signed_in(bob)
    ann_browser, bob_browser = browser_subscription("ann"), browser_subscription("bob")
    post(ann_client, SUBSCRIBE, ann_browser.subscription, ann_token)
    post(bob_client, SUBSCRIBE, bob_browser.subscription, bob_token)

    response = post(bob_client, UNSUBSCRIBE, {"endpoint": ann_browser.endpoint}, bob_token)

    assert response.json() == {"subscribed": False, "removed": 0}
    assert ChannelAddress.objects.filter(user=ann, is_active=True).count() == 1

    response = post(ann_client, UNSUBSCRIBE, {"endpoint": ann_browser.endpoint}, ann_token)
    assert response.json() == {"subscribed": False, "removed": 1}
    assert not ChannelAddress.objects.filter(user=ann).exists()
    assert ChannelAddress.objects.filter(user=bob).count() == 1


def test_a_browser_belongs_to_whoever_registered_it_last(channel):
    ann, bob = factories.UserFactory(), factories.UserFactory()
    shared = browser_subscription("shared")
    for user in (ann, bob):
        client, token = signed_in(user)
        assert post(client, SUBSCRIBE, shared.subscription, token).status_code == 200

    (address,) = ChannelAddress.objects.all()
    assert address.user == bob


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            "{not json",
            "the body is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1): send the PushSubscription's toJSON()",
        ),
        (
            "[]",
            "the body must be an object in JSON, not an array: send the PushSubscription's "
            "toJSON()",
        ),
        ({"keys": {}}, "the push subscription has no endpoint"),
        (
            {"endpoint": "http://push.example.net/x", "keys": {}},
            "the push subscription's endpoint 'http://push.example.net/x' is not an https URL",
        ),
        (
            {"endpoint": "https://push.example.net/x"},
            'the push subscription has no "keys" (p256dh and auth)',
        ),
        (
            {"endpoint": "https://push.example.net/x", "keys": {"p256dh": "AAAA", "auth": "x"}},
            "the push subscription's keys.p256dh is not a base64url P-256 public key",
        ),
    ],
)
def test_malformed_subscriptions_get_a_clear_error(channel, body, error):
    client, token = signed_in(factories.UserFactory())

    response = post(client, SUBSCRIBE, body, token)

    assert (response.status_code, response.json()) == (400, {"error": error})
    assert not ChannelAddress.objects.exists()


def test_a_subscription_too_long_to_store_is_refused(channel):
    client, token = signed_in(factories.UserFactory())
    subscription = browser_subscription().subscription
    subscription["endpoint"] = "https://push.example.net/" + "x" * 2000

    response = post(client, SUBSCRIBE, subscription, token)

    assert response.status_code == 400
    assert "characters long; at most 2048 can be stored" in response.json()["error"]
    assert not ChannelAddress.objects.exists()


def test_unsubscribing_needs_an_endpoint(channel):
    client, token = signed_in(factories.UserFactory())
    response = post(client, UNSUBSCRIBE, {}, token)
    assert (response.status_code, response.json()) == (
        400,
        {"error": "give the subscription's endpoint to remove it"},
    )
