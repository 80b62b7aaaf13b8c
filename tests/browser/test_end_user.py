"""What end users click, in a real browser (Playwright + chromium): the inbox and its badge,
the preference centre, and the unsubscribe link of a mail received by a real SMTP server."""

from __future__ import annotations

import io
import re
import zoneinfo

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.api import notify
from campaigns.management.commands.seed_demo import DEMO_PASSWORD
from campaigns.models import ChannelAddress, DigestPreference, Event, Message, OptOut
from campaigns.outbox.sweep import drain
from tests import factories
from tests.browser.axe import assert_accessible
from tests.channels.backends.test_twilio import FakeTwilio
from tests.channels.fakes import FakeServer

pytestmark = pytest.mark.browser

SHOTS = "/tmp/notifier-end-user"  # noqa: S108 - fixed paths, to look at


@pytest.fixture
def demo(transactional_db, smtp_server, live_server, settings):
    """The demo data, its emails sent to the test's SMTP server with links to the live
    server."""
    settings.SITE_URL = live_server.url
    quiet = io.StringIO()
    call_command("seed_demo", "--no-messages", stdout=quiet)
    factories.email_channel(port=smtp_server[1])
    call_command("seed_demo", stdout=quiet)
    return smtp_server[0]


def user_login(page, username: str, password: str, *, then: str = "/preferences/") -> None:
    """Sign in through the end users' login form (without ``then`` it leads to the inbox)."""
    page.goto(f"/accounts/login/?next={then}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert "/accounts/login/" not in page.url, page.locator("body").inner_text()


def badge_count(page):
    return page.locator("#notifier-badge .nt-badge-count")


def test_inbox_badge_drops_without_a_reload(page, demo):
    user_login(page, "alice", DEMO_PASSWORD)
    expect(page).to_have_url(re.compile(r"/preferences/$"))
    # welcome, order shipped, and the order whose escalation went by email (seed_demo)
    expect(badge_count(page)).to_have_text("3")

    page.locator("#notifier-badge").click()
    expect(page).to_have_url(re.compile(r"/inbox/$"))
    items = page.locator(".nt-item")
    expect(items).to_have_count(3)
    expect(items.first).to_contain_text("Your order A-1003 is on its way")
    expect(page.locator(".nt-new")).to_have_count(3)
    page.screenshot(path=f"{SHOTS}-inbox.png", full_page=True)

    expect(page.locator("#inbox-summary")).to_have_text("3 unread")
    expect(items.first.locator(".nt-unread")).to_have_text("Unread")  # in words, not colour
    assert_accessible(page)

    page.evaluate("window.__noReload = true")
    items.first.get_by_role("button", name="Done").click()
    expect(items.first.locator(".nt-done")).to_have_text("Done")
    expect(badge_count(page)).to_have_text("2")
    expect(page.locator("#inbox-summary")).to_have_text("2 unread")  # the heading follows
    expect(items.first.locator(".nt-unread")).to_have_count(0)
    assert page.evaluate("window.__noReload") is True  # the page was not reloaded

    items.last.get_by_role("button", name=re.compile("^Archive")).click()
    expect(items).to_have_count(2)  # put away, without a reload
    expect(page.locator("#inbox-summary")).to_have_text("1 unread")
    expect(badge_count(page)).to_have_text("1")
    assert page.evaluate("window.__noReload") is True
    page.get_by_role("link", name="Archived", exact=True).click()
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Welcome")
    page.get_by_role("link", name="All", exact=True).click()

    page.get_by_role("link", name="Unread", exact=True).click()
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Your order A-1001 is on its way")


def test_preference_toggle_shows_in_the_admin(page, demo, django_user_model, admin_login):
    django_user_model.objects.create_superuser("root", "root@example.com", "root-pw-123")
    user_login(page, "alice", DEMO_PASSWORD)
    page.goto("/preferences/")
    toggle = page.get_by_label("Order shipped by Email")
    expect(toggle).to_be_checked()
    expect(page.get_by_label("Maintenance notice by Email")).to_be_disabled()
    page.evaluate("window.__noReload = true")
    toggle.click()  # saves at once, by htmx
    expect(page.locator(".nt-saved")).to_have_text("Saved.")
    expect(page.get_by_label("Order shipped by Email")).not_to_be_checked()
    assert page.evaluate("window.__noReload") is True
    page.screenshot(path=f"{SHOTS}-preferences.png", full_page=True)
    optout = OptOut.objects.get()
    assert (optout.user.username, optout.event.key, optout.kind, optout.source) == (
        "alice",
        "order-shipped",
        "email",
        "preferences",
    )

    page.context.clear_cookies()
    admin_login(page, "root", "root-pw-123")
    page.goto("/admin/campaigns/optout/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("alice")
    expect(rows.first).to_contain_text("Order shipped")


def test_unsubscribe_link_from_a_received_mail(page, demo):
    mails = [m for m in demo.messages if m["To"] == "alice@example.com"]
    welcome = next(m for m in mails if m["Subject"].startswith("Welcome"))
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.search(r"<(https?://[^>]+)>", welcome["List-Unsubscribe"]).group(1)
    text = welcome.get_body(("plain",)).get_content()
    assert f"Unsubscribe: {link}" in text  # welcome is marketing: the footer line

    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe")
    expect(page.locator("body")).to_contain_text("alice@example.com")
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    page.screenshot(path=f"{SHOTS}-unsubscribed.png", full_page=True)
    welcome_event = Event.objects.get(key="welcome")
    assert OptOut.objects.filter(address="alice@example.com", event=welcome_event).exists()

    page.get_by_role("link", name="Choose which notifications you get").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Notification preferences")
    expect(page.get_by_label("Welcome by Email")).not_to_be_checked()

    page.goto(link.replace("/unsubscribe/", "/unsubscribe/x"))
    expect(page.get_by_role("heading", level=1)).to_have_text("This link does not work")


PHONE = "+4915112345678"
PHONE_SIZE = {"width": 390, "height": 844}


@pytest.fixture
def twilio():
    server = FakeServer(FakeTwilio()).start()
    yield server
    server.stop()


def test_alice_turns_sms_off_from_her_phone_and_required_events_still_reach_her(
    page, smtp_server, twilio, django_user_model
):
    smtp, port = smtp_server
    email = factories.email_channel(port=port)
    sms = factories.sms_channel(base_url=twilio.url)
    factories.ChannelFactory(key="console", name="Console", backend="console")  # operators'
    shipped = factories.EventFactory(
        key="order-shipped", name="Order shipped", user_configurable=True
    )
    security = factories.EventFactory(
        key="security-alert",
        name="Security alert",
        mandatory=True,
        mandatory_reason="We tell you when someone signs in to your account from a new device.",
    )
    for event in (shipped, security):
        for channel in (email, sms):
            factories.TemplateFactory(
                event=event, channel=channel, text_body=f"{event.name} {{{{ order_id }}}}"
            )
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "alice-pw-123")
    ChannelAddress.objects.create(user=alice, kind="phone", address=PHONE)

    page.set_viewport_size(PHONE_SIZE)
    user_login(page, "alice", "alice-pw-123")
    expect(page.get_by_role("heading", level=1)).to_have_text("Notification preferences")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE["width"]
    expect(page.locator("body")).not_to_contain_text("Console")  # an operators' channel
    expect(page.locator("body")).to_contain_text("someone signs in to your account")
    expect(page.get_by_label("Security alert by SMS")).to_be_disabled()
    assert_accessible(page)

    sms_switch = page.get_by_role("switch", name=re.compile(r"^SMS"))
    expect(sms_switch).to_be_checked()
    page.evaluate("window.__noReload = true")
    sms_switch.click()  # saves at once
    expect(page.locator(".nt-saved")).to_have_text("Saved.")
    expect(page.get_by_role("switch", name=re.compile(r"^SMS"))).not_to_be_checked()
    expect(page.get_by_label("Order shipped by SMS")).to_be_disabled()
    expect(page.get_by_label("Order shipped by SMS")).not_to_be_checked()
    expect(page.get_by_label("Order shipped by Email")).to_be_checked()
    assert page.evaluate("window.__noReload") is True
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE["width"]
    assert_accessible(page)
    page.screenshot(path=f"{SHOTS}-preferences-phone.png", full_page=True)

    for key in ("order-shipped", "security-alert"):
        notify(key, alice, {"order_id": "A-1"})
    drain()
    texts = [request.form()["Body"] for request in twilio.requests]
    assert texts == ["Security alert A-1"]  # no SMS but the required one
    assert all(request.form()["To"] == PHONE for request in twilio.requests)
    assert sorted(m["Subject"] for m in smtp.messages) == ["Order A-1 shipped"] * 2


def test_alice_chooses_a_daily_digest_in_the_preference_centre(page, demo):
    user_login(page, "alice", DEMO_PASSWORD)
    frequency = page.get_by_label("How often")  # only "New comments" offers one
    expect(frequency).to_have_value("hourly")  # the event's own frequency
    page.evaluate("window.__noReload = true")
    frequency.select_option("daily")  # saves at once, by htmx
    expect(page.locator(".nt-saved")).to_have_text("Saved.")
    expect(page.get_by_label("How often")).to_have_value("daily")
    assert page.evaluate("window.__noReload") is True
    assert_accessible(page)
    page.screenshot(path=f"{SHOTS}-preferences-digest.png", full_page=True)
    preference = DigestPreference.objects.get()
    assert (preference.user.username, preference.event.key, preference.frequency) == (
        "alice",
        "comment-posted",
        "daily",
    )

    alice = preference.user
    messages = [
        notify("comment-posted", alice, {"author": a, "comment": "Hi"}).messages[0]
        for a in ("Bob", "Carla")
    ]
    assert len({m.pk for m in messages}) == 1  # one daily digest
    daily = Message.objects.get(pk=messages[0].pk)
    assert daily.status == "scheduled" and daily.digest_items.count() == 2
    due = timezone.localtime(daily.next_attempt_at, zoneinfo.ZoneInfo(daily.recipient["tz"]))
    assert (due.hour, due.minute) == (9, 0)
