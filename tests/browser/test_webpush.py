"""Browser notifications in a real browser (Playwright + chromium): the inbox's "Enable browser
notifications" registers the service worker and posts the subscription, a notify() reaches
the (fake) push service encrypted for it, the service worker shows what it receives, and
"Disable" forgets the subscription.

Headless chromium has no push service: ``PushManager.subscribe()`` rejects ("Registration
failed - permission denied"). So the page's ``PushManager`` is given a subscription made by
the test (a real P-256 key pair and auth secret, its endpoint on the fake push service on
127.0.0.1); everything else is the browser's own: the permission, the service worker's
registration at /sw.js, the page's POST with its CSRF token, and — through the DevTools
protocol's ``ServiceWorker.deliverPushMessage`` — a push event in the service worker.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from campaigns.api import notify
from campaigns.models import ChannelAddress, Message, MessageStatus
from tests.channels.conftest import channel_with_event
from tests.channels.fakes import FakeServer
from tests.channels.webpush_fake import PRIVATE_PEM, PUBLIC_KEY, FakePushService, unb64url

pytestmark = pytest.mark.browser

PASSWORD = "ann-pw-123456"

# PushManager as a browser with a push service would offer it, handing out the test's
# subscription (kept across reloads, as a browser keeps it); it records the
# applicationServerKey the page subscribed with.
PUSH_MANAGER = """
(() => {
  const subscription = %s;
  const made = (key) => ({
    endpoint: subscription.endpoint,
    expirationTime: null,
    options: { applicationServerKey: key.buffer, userVisibleOnly: true },
    toJSON: () => subscription,
    unsubscribe: async () => {
      localStorage.removeItem("test-push-key");
      window.__unsubscribed = true;
      return true;
    },
  });
  PushManager.prototype.subscribe = async function (options) {
    const key = new Uint8Array(options.applicationServerKey);
    window.__subscribedWith = Array.from(key);
    localStorage.setItem("test-push-key", JSON.stringify(window.__subscribedWith));
    return made(key);
  };
  PushManager.prototype.getSubscription = async function () {
    const key = localStorage.getItem("test-push-key");
    return key ? made(new Uint8Array(JSON.parse(key))) : null;
  };
})();
"""

# The notifications the service worker shows, once there are some (polled for up to 10 s).
ACTIVATED = """async () => {
  const registration = await navigator.serviceWorker.ready;
  return registration.active && registration.active.state === "activated";
}"""

NOTIFICATIONS = """async (tries) => {
  const registration = await navigator.serviceWorker.ready;
  for (let attempt = 0; attempt < tries; attempt++) {
    const shown = await registration.getNotifications();
    if (shown.length) {
      return shown.map((n) => ({ title: n.title, body: n.body, lang: n.lang, data: n.data }));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return [];
}"""


@pytest.fixture
def push():
    service = FakePushService()
    with FakeServer(service) as server:
        service.url = server.url
        yield service


def sign_in(page, username: str) -> None:
    page.goto("/accounts/login/?next=/inbox/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert page.url.endswith("/inbox/"), page.locator("body").inner_text()


def registration_id(page, cdp, scope: str) -> str:
    """The service worker registration's id, from the DevTools protocol (its events arrive
    while Playwright waits on something)."""
    found: list[str] = []

    def updated(event) -> None:
        found.extend(
            r["registrationId"]
            for r in event["registrations"]
            if r["scopeURL"] == scope and not r["isDeleted"]
        )

    cdp.on("ServiceWorker.workerRegistrationUpdated", updated)
    cdp.send("ServiceWorker.enable")  # reports the current registrations
    for _ in range(100):
        if found:
            break
        page.wait_for_timeout(50)
    assert found, f"no service worker registration for {scope}"
    return found[-1]


def test_enable_receive_and_disable_browser_notifications(
    page, live_server, push, django_user_model, run_worker
):
    channel_with_event(
        key="browser",
        backend="push.webpush",
        config={"vapid_private_key": PRIVATE_PEM, "vapid_subject": "mailto:ops@example.com"},
    )
    ann = django_user_model.objects.create_user("ann", "ann@example.com", PASSWORD)
    browser = push.subscribe("ann", application_server_key=PUBLIC_KEY)
    page.context.grant_permissions(["notifications"], origin=live_server.url)
    page.add_init_script(PUSH_MANAGER % json.dumps(browser.subscription))

    sign_in(page, "ann")
    expect(page.locator("#webpush[data-ready]")).to_be_attached()
    enable = page.get_by_role("button", name="Enable browser notifications")
    disable = page.get_by_role("button", name="Disable browser notifications")
    expect(enable).to_be_visible()
    expect(disable).to_be_hidden()

    enable.click()
    expect(page.get_by_role("status")).to_have_text("Browser notifications are on.")
    expect(disable).to_be_visible()
    assert bytes(page.evaluate("window.__subscribedWith")) == unb64url(PUBLIC_KEY)
    scope = page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == live_server.url + "/"
    (address,) = ChannelAddress.objects.filter(user=ann, kind="webpush", is_active=True)
    assert json.loads(address.address)["endpoint"] == browser.endpoint

    # the site pushes to it: through the RQ worker to the push service, encrypted for ann
    notify(
        "order-shipped", ann, {"order_id": "A-7"}, channels=["browser"], extra={"url": "/inbox/"}
    )
    assert run_worker() == 1
    assert Message.objects.get().status == MessageStatus.SENT
    (payload,) = push.payloads("ann")
    assert (payload["title"], payload["url"]) == ("Order A-7 shipped", "/inbox/")

    # what the push service would hand the browser: the service worker shows it (once it is
    # activated: a push sent to a worker still activating can be dropped by DevTools)
    page.wait_for_function(ACTIVATED)
    cdp = page.context.new_cdp_session(page)
    push_message = {
        "origin": live_server.url,
        "registrationId": registration_id(page, cdp, scope),
        "data": json.dumps(payload),
    }
    # Headless Chromium now and then drops a push that DevTools hands to a running worker
    # (no error reported): hand it again, as a push service redelivers, up to three times.
    for _ in range(3):
        cdp.send("ServiceWorker.deliverPushMessage", push_message)
        shown = page.evaluate(NOTIFICATIONS, 80)  # up to 4 s
        if shown:
            break
    state = page.evaluate(
        """async () => { const r = await navigator.serviceWorker.ready;
        return [Notification.permission, r.active.state]; }"""
    )
    assert len(shown) == 1, (shown, state)
    (shown,) = shown
    assert shown["title"] == "Order A-7 shipped"
    assert shown["body"] == payload["body"] and shown["lang"] == "en"
    assert shown["data"]["url"] == "/inbox/" and shown["data"]["event"] == "order-shipped"

    # a reload knows the browser is subscribed (and re-posts it); "Disable" forgets it
    page.reload()
    expect(page.locator("#webpush[data-ready]")).to_be_attached()
    expect(enable).to_be_hidden()
    disable.click()
    expect(page.get_by_role("status")).to_have_text("Browser notifications are off.")
    assert page.evaluate("window.__unsubscribed") is True
    expect(enable).to_be_visible()
    assert not ChannelAddress.objects.filter(user=ann).exists()


def test_no_offer_without_a_webpush_channel(page, django_user_model):
    django_user_model.objects.create_user("ann", "ann@example.com", PASSWORD)
    sign_in(page, "ann")
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    expect(page.get_by_role("button", name="Enable browser notifications")).to_have_count(0)
