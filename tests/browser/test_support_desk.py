"""The support desk in a real browser: "Alice says she never got it". Support types her name,
opens her timeline, sees why her SMS was not sent (she turned SMS off) and why her email
failed (the mail server refused it), sends the email again from its page and watches it go.
axe finds no serious violation on the pages Support uses."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from campaigns.api import notify
from campaigns.models import ChannelAddress, Event, Message, OptOut
from campaigns.outbox.sweep import drain
from campaigns.recipients.inbox import inbox_mark_seen
from tests import factories
from tests.browser.axe import assert_accessible
from tests.channels.backends.test_twilio import FakeTwilio
from tests.channels.fakes import FakeServer

pytestmark = pytest.mark.browser
PASSWORD = "support-pw-123"
SHOTS = "/tmp/notifier-support"  # noqa: S108 - fixed paths, to look at


@pytest.fixture
def twilio():
    server = FakeServer(FakeTwilio()).start()
    yield server
    server.stop()


@pytest.fixture
def story(django_user_model, smtp_server, twilio):
    """Alice turned SMS off; her order email bounced off the mail server (550)."""
    smtp, port = smtp_server
    email = factories.email_channel(port=port)
    sms = factories.sms_channel(base_url=twilio.url)
    order = factories.EventFactory(key="order-shipped", name="Order shipped")
    for channel in (email, sms):
        factories.TemplateFactory(event=order, channel=channel)
    alice = django_user_model.objects.create_user(
        "alice", "alice@example.com", first_name="Alice", last_name="Archer"
    )
    ChannelAddress.objects.create(user=alice, kind="phone", address="+4915112345678")
    OptOut.objects.create(user=alice, kind="sms", source="preferences", created_by=alice)
    smtp.always = "550 5.1.1 mailbox unavailable"
    notify("order-shipped", alice, {"order_id": "A-1001"}, channels=["email", "sms"])
    drain()
    smtp.always = None
    support = django_user_model.objects.create_user("sam", "sam@x.io", PASSWORD, is_staff=True)
    support.groups.add(Group.objects.get(name="Support"))
    return {"smtp": smtp, "alice": alice, "twilio": twilio}


def test_support_finds_alice_sees_why_and_sends_again(page, story, admin_login, run_worker):
    admin_login(page, "sam", PASSWORD)
    page.goto("/admin/")
    assert_accessible(page)
    page.get_by_role("searchbox", name="Find a person").fill("Alice")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("list", name="People found")).to_contain_text("Alice Archer")
    assert_accessible(page)
    page.get_by_role("link", name="Alice Archer").click()

    expect(page.locator("#person-name")).to_have_text("Alice Archer")
    skipped = page.locator('#timeline tr[data-kind="decision"]')
    expect(skipped).to_have_count(1)
    expect(skipped).to_contain_text("SMS")
    expect(skipped).to_contain_text("opted out")
    failed = page.locator('#timeline tr[data-kind="message"][data-status="failed"]')
    expect(failed).to_contain_text("550 5.1.1 mailbox unavailable")
    expect(page.locator("#person-optouts")).to_contain_text("Preference centre")
    assert_accessible(page)
    page.screenshot(path=f"{SHOTS}-timeline.png", full_page=True)

    failed.get_by_role("link", name=re.compile(r"\d{4}-\d\d-\d\d")).click()  # its page
    expect(page.locator('#message-status [data-status="failed"]')).to_be_visible()
    expect(page.locator("#message-last-error")).to_contain_text("mailbox unavailable")
    expect(page.locator("#message-attempts tbody tr")).to_have_count(1)
    assert_accessible(page)

    page.locator('#message-status a[data-action="resend"]').click()  # asks first
    dialog = page.locator("#modal-content")
    expect(dialog).to_contain_text("Send this message again?")
    assert Message.objects.get(channel__key="email").status == "failed"
    dialog.get_by_role("button", name="Send again").click()
    expect(page.locator('#message-status [data-status="queued"]')).to_be_visible()
    expect(page.get_by_text("The message is queued to be sent again.")).to_be_visible()

    assert run_worker() >= 1  # a worker picks it up; the page polls its status
    expect(page.locator('#message-status [data-status="sent"]')).to_be_visible()
    expect(page.locator("#message-attempts tbody tr")).to_have_count(2)
    assert [m["To"] for m in story["smtp"].messages] == ["alice@example.com"]
    assert story["twilio"].requests == []  # she turned SMS off: nothing went there
    page.screenshot(path=f"{SHOTS}-message.png", full_page=True)


def test_support_sees_an_escalation_and_why_it_was_cancelled(page, story, admin_login):
    """Alice's inbox item about order A-2002 was to go by email too if she had not seen it
    in 15 minutes; she saw it, so it did not. Her timeline says so, and why."""
    inbox = factories.ChannelFactory(
        key="inbox", name="In-app inbox", backend="channels.backends.inbox.InboxBackend"
    )
    factories.TemplateFactory(event=Event.objects.get(key="order-shipped"), channel=inbox)
    alice = story["alice"]
    result = notify(
        "order-shipped", alice, {"order_id": "A-2002"}, channels=["inbox"], then=[("email", "15m")]
    )
    drain()
    inbox_mark_seen(user=alice)

    admin_login(page, "sam", PASSWORD)
    page.goto(f"/admin/campaigns/message/people/user/{alice.pk}/")
    step = page.locator('#timeline tr[data-kind="message"][data-status="cancelled"]')
    expect(step).to_have_count(1)
    expect(step).to_contain_text("Why: seen in the inbox")
    expect(step).to_contain_text("goes if the In-app inbox message is not seen")
    step.get_by_role("link", name="In-app inbox message").click()  # the step before it
    assert page.url.endswith(f"/admin/campaigns/message/{result.messages[0].pk}/change/")
    page.go_back()
    assert_accessible(page)
    page.screenshot(path=f"{SHOTS}-escalation.png", full_page=True)
