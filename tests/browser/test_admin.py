"""What operators see and click in the admin, in a real browser (Playwright + chromium)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.api import notify
from campaigns.models import Message
from campaigns.outbox.sweep import drain
from channels.models import SECRET_MASK, ChannelConfig
from tests import factories

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery"
SIDEBAR = ["Events", "Templates", "Channels", "Messages", "Opt-outs", "Queues (django-rq)"]
SCREENSHOT = "/tmp/notifier-admin-messages.png"  # noqa: S108 - a fixed path, to look at


@pytest.fixture
def superuser(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


def sidebar_link(page, title: str):
    """The sidebar navigation's link labelled ``title`` (not the "All applications" panel's;
    the accessible name also holds the icon's ligature, hence the filter on the label)."""
    return page.locator("#nav-sidebar-apps ol > li > a").filter(
        has=page.get_by_text(title, exact=True)
    )


def assert_unfold_styled(page) -> None:
    """unfold's stylesheet and icon font were served and applied (not a bare HTML page)."""
    expect(page.locator("#nav-sidebar")).to_have_css("position", "fixed")
    expect(page.locator("body")).to_have_css("font-family", re.compile("Inter"))
    rules = page.evaluate(
        "() => [...document.styleSheets].filter(s => (s.href || '').includes('/unfold/css/'))"
        ".reduce((n, s) => n + s.cssRules.length, 0)"
    )
    assert rules > 100, f"unfold's stylesheet is missing or empty ({rules} rules)"
    icon_font = page.evaluate(
        "async () => { await document.fonts.ready; return [...document.fonts].some("
        "f => f.family.includes('Material Symbols') && f.status === 'loaded'); }"
    )
    assert icon_font, "the Material Symbols icon font did not load"


def test_superuser_logs_in_and_sees_the_sidebar(page, superuser, admin_login):
    admin_login(page, "root", PASSWORD)

    assert page.url.endswith("/admin/")
    expect(page).to_have_title(re.compile("Notifier"))
    expect(page.locator("#nav-sidebar-inner")).to_be_visible()
    for title in SIDEBAR:
        expect(sidebar_link(page, title)).to_be_visible()
    expect(page.get_by_role("heading", name="Site administration", level=1)).to_be_visible()


def test_messages_changelist_filters_and_detail(page, superuser, admin_login):
    channel = factories.memory_channel("outbox")
    template = factories.TemplateFactory(
        event=factories.EventFactory(key="order-shipped"), channel=channel
    )
    notify("order-shipped", {"email": "ann@example.com", "name": "Ann"}, {"order_id": "A-42"})
    notify(
        template.event,
        {"email": "bob@example.com", "name": "Bob"},
        {"order_id": "B-7"},
        scheduled_at=timezone.now() + dt.timedelta(days=1),
    )
    assert drain().get("sent") == 1
    sent = Message.objects.get(address="ann@example.com")
    assert (sent.status, sent.subject) == ("sent", "Order A-42 shipped")

    admin_login(page, "root", PASSWORD)
    page.goto("/admin/campaigns/message/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    ann = rows.filter(has_text="ann@example.com")
    expect(ann.locator("td.field-address")).to_have_text("ann@example.com")
    expect(ann.locator("td.field-status_badge")).to_have_text("Sent")
    bob = rows.filter(has_text="bob@example.com")
    expect(bob.locator("td.field-status_badge")).to_have_text("Scheduled")
    assert_unfold_styled(page)
    page.screenshot(path=SCREENSHOT, full_page=True)

    page.locator(".filter-open-button").click()
    filters = page.locator("#changelist-filter")
    expect(filters).to_be_visible()
    filters.get_by_role("link", name="Sent", exact=True).click()
    expect(page).to_have_url(re.compile(r"\?status__exact=sent$"))
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td.field-address")).to_have_text("ann@example.com")
    expect(page.locator("#result_list")).not_to_contain_text("bob@example.com")

    rows.first.get_by_role("link", name=str(sent.uuid)).click()
    expect(page).to_have_url(re.compile(rf"/admin/campaigns/message/{sent.pk}/change/"))
    expect(page.locator("#content")).to_contain_text("Order A-42 shipped")


def test_channel_secrets_are_never_echoed_and_survive_saves(page, superuser, admin_login):
    channel = ChannelConfig.objects.create(
        key="smtp",
        name="SMTP",
        backend="channels.backends.email.EmailBackend",
        config={"host": "127.0.0.1", "port": 2525, "username": "u", "password": "S3cret-Value"},
    )
    change_url = f"/admin/channels/channelconfig/{channel.pk}/change/"

    admin_login(page, "root", PASSWORD)
    page.goto(change_url)
    password = page.locator("input[name=cfg__password]")
    assert "S3cret-Value" not in page.content()
    expect(password).to_have_attribute("type", "password")
    expect(password).to_have_value("")  # write-only: never shown back
    expect(password).to_have_attribute("placeholder", re.compile("stored"))
    expect(page.locator("input[name=cfg__host]")).to_have_value("127.0.0.1")

    with page.expect_navigation():
        page.locator("[name=_save]").click()
    expect(page.locator("body")).to_contain_text("was changed successfully")
    channel.refresh_from_db()
    assert channel.config["password"] == "S3cret-Value"
    assert channel.config["host"] == "127.0.0.1"

    page.goto(change_url)
    assert "S3cret-Value" not in page.content()
    page.locator("input[name=cfg__host]").fill("mail.example.com")
    with page.expect_navigation():
        page.locator("[name=_save]").click()
    expect(page.locator("body")).to_contain_text("was changed successfully")
    assert "S3cret-Value" not in page.content()
    channel.refresh_from_db()
    assert channel.config["host"] == "mail.example.com"
    assert channel.config["password"] == "S3cret-Value"

    page.goto(change_url)
    page.locator("input[name=cfg__port]").fill("0")
    page.locator("input[name=cfg__port]").evaluate("input => input.removeAttribute('min')")
    page.locator("[name=_save]").click()
    expect(page.locator("body")).to_contain_text("greater than or equal to 1")
    channel.refresh_from_db()
    assert channel.config["port"] == 2525


def test_view_only_staff_sees_the_channel_masked(page, django_user_model, admin_login):
    viewer = django_user_model.objects.create_user(
        "viewer", "viewer@example.com", PASSWORD, is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_channelconfig"))
    channel = ChannelConfig.objects.create(
        key="smtp",
        name="SMTP",
        backend="channels.backends.email.EmailBackend",
        config={"host": "127.0.0.1", "port": 2525, "username": "u", "password": "S3cret-Value"},
    )

    admin_login(page, "viewer", PASSWORD)
    expect(sidebar_link(page, "Channels")).to_be_visible()
    expect(sidebar_link(page, "Messages")).to_have_count(0)
    response = page.goto(f"/admin/channels/channelconfig/{channel.pk}/change/")
    assert response.status == 200, f"the change page answered {response.status}"
    assert "S3cret-Value" not in page.content()
    expect(page.locator("#content")).to_contain_text("127.0.0.1")
    expect(page.locator("#content")).to_contain_text(SECRET_MASK)


def test_staff_without_permissions_sees_no_channels(page, django_user_model, admin_login):
    django_user_model.objects.create_user("clerk", "clerk@example.com", PASSWORD, is_staff=True)

    admin_login(page, "clerk", PASSWORD)
    expect(page.locator("#nav-sidebar-inner")).to_be_visible()
    expect(page.get_by_text("have permission to view or edit anything")).to_be_visible()
    for title in SIDEBAR:
        expect(sidebar_link(page, title)).to_have_count(0)

    response = page.goto("/admin/channels/channelconfig/")
    assert response.status == 403
    expect(page.locator("body")).to_contain_text("403")
