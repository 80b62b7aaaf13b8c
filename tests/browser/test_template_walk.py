"""The walk of a marketing person through templates, in Chromium: draft a change in the code
editor, preview it beside the editor at two widths and as a real recipient, publish it, see a
message scheduled before still go out with the old version (a real RQ worker, a real SMTP
server), roll back; an SMS template counts its segments as it is typed. No request leaves the
site (the ``page`` fixture blocks any and fails on a Content-Security-Policy violation; the walk
also records every request the page makes)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.api import notify
from campaigns.models import Audience, Contact, Message, Template
from campaigns.outbox.sweep import sweep
from channels.models import ChannelConfig
from tests import factories

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"
SHOTS = "/tmp/notifier-template-walk"  # noqa: S108 - fixed paths, to look at

V1_HTML = (
    "<mjml><mj-body><mj-section><mj-column>"
    '<mj-text font-size="20px">Order {{ order_id }} shipped</mj-text>'
    "<mj-text>Hello {{ recipient.name }}, it is on its way.</mj-text>"
    "</mj-column></mj-section></mj-body></mjml>"
)


def editor(page, column: str):
    """The code editor of a template field (CodeMirror's editable area)."""
    return page.locator(f'[data-editor-for="{column}"] .cm-content')


@pytest.fixture
def shop(transactional_db, smtp_server):
    """An email channel to the test's SMTP server, an event with its v1 email template, an
    SMS channel with a template, and a contact to preview as."""
    _, port = smtp_server
    email = factories.email_channel(port=port)
    event = factories.EventFactory(
        key="order-shipped",
        name="Order shipped",
        variables=[{"name": "order_id", "label": "Order", "sample": "A-1"}],
    )
    template = factories.TemplateFactory(
        event=event,
        channel=email,
        subject="Your order {{ order_id }} shipped",
        text_body="",
        html_body=V1_HTML,
    )
    sms = ChannelConfig.objects.create(
        key="sms",
        name="SMS",
        backend="channels.backends.sms.TwilioSmsBackend",
        config={"account_sid": "AC123", "auth_token": "secret", "from_number": "+15005550006"},
    )
    sms_template = factories.TemplateFactory(
        event=event, channel=sms, subject="", text_body="Order {{ order_id }} shipped."
    )
    customers = Audience.objects.create(name="Customers", kind="contacts")
    Contact.objects.create(
        audience=customers, email="grace@example.com", name="Grace Hopper", language="en"
    )
    return template, sms_template


@pytest.mark.slow  # a real RQ worker (in this process) and a real SMTP server
def test_a_marketing_person_drafts_previews_publishes_and_rolls_back(
    page, django_user_model, admin_login, shop, smtp, run_worker, live_server
):
    template, sms_template = shop
    mia = django_user_model.objects.create_user("mia", "mia@x.io", PASSWORD, is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    # Scheduled yesterday for tomorrow, with v1: it must go out as v1 whatever is published.
    tomorrow = timezone.now() + dt.timedelta(days=1)
    (scheduled,) = notify(
        "order-shipped",
        {"email": "ann@example.com", "name": "Ann"},
        {"order_id": "A-7"},
        channels=["email"],
        scheduled_at=tomorrow,
    ).messages
    assert scheduled.status == "scheduled"
    v1 = template.published
    assert scheduled.template_version_id == v1.pk

    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    confirms: list[str] = []

    def accept(dialog):
        confirms.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    steps: list[tuple[str, float]] = []
    started = last = time.monotonic()

    def step(name: str) -> None:
        nonlocal last
        now = time.monotonic()
        steps.append((name, now - last))
        last = now

    admin_login(page, "mia", PASSWORD)
    step("log in")

    # 1. Draft a change in the editor; the preview sits beside it and follows the typing.
    page.goto(f"/admin/campaigns/template/{template.pk}/change/")
    preview = page.locator("#template-preview")
    expect(preview.locator(".preview-subject")).to_have_text("Your order A-1 shipped")
    expect(page.locator("#template-status")).to_contain_text("Published: v1")
    page.locator("#id_subject").fill("Good news: order {{ order_id }} is on its way")
    html = editor(page, "html_body")
    html.click()
    page.keyboard.press("Control+End")
    html.fill(V1_HTML.replace("it is on its way.", "it left our warehouse today."))
    expect(preview.locator(".preview-subject")).to_have_text("Good news: order A-1 is on its way")
    frame = page.frame_locator("iframe.preview-html")
    expect(frame.locator("body")).to_contain_text("it left our warehouse today")
    expect(preview.locator(".preview-text")).to_contain_text("it left our warehouse today")
    panel = page.locator(".template-preview-panel")
    editor_box, panel_box = html.bounding_box(), panel.bounding_box()
    assert panel_box["x"] > editor_box["x"] + editor_box["width"] / 2, "beside, not below"
    assert 0 <= panel_box["y"] < 900, "the preview stays in view while typing in the editor"
    step("draft a change in the editor, preview beside it")

    # 2. Two widths, and the dark view.
    iframe = page.locator("iframe.preview-html")
    assert iframe.bounding_box()["width"] > 420
    page.get_by_label("Mobile").check()
    expect(iframe).to_have_css("width", "375px")
    page.screenshot(path=f"{SHOTS}-mobile.png")
    page.get_by_label("Dark").check()
    expect(iframe).to_have_css("color-scheme", "dark")
    page.get_by_label("Desktop").check()
    page.get_by_label("Light").check()
    # Each toggle swaps the preview in again: measured in the page, on whichever is shown
    # (times out, and fails, unless it is back to the desktop width).
    page.wait_for_function(
        "() => (document.querySelector('iframe.preview-html')"
        "?.getBoundingClientRect().width || 0) > 420"
    )
    step("preview at two widths and dark")

    # 3. As a real recipient: a contact found by name.
    page.locator(".template-preview-panel summary").click()
    page.get_by_label("Preview as a real recipient: search").fill("Grace")
    expect(page.locator("#id_preview_recipient option")).to_have_count(2)
    expect(preview.locator(".preview-recipient")).to_contain_text("Grace Hopper")
    expect(frame.locator("body")).to_contain_text("Hello Grace Hopper")
    step("preview as a real recipient")

    # 4. Save the draft, then publish it.
    page.locator("[name=_continue]").click()
    expect(page.locator("body")).to_contain_text("was changed successfully")
    expect(page.locator("#template-status")).to_contain_text("changes that are not published")
    template.refresh_from_db()
    assert template.published_id == v1.pk  # saving a draft publishes nothing
    page.locator("#template-status input[name=note]").fill("Friendlier subject")
    page.get_by_role("button", name="Publish the saved draft").click()
    expect(page.locator("#template-status")).to_contain_text("Published: v2")
    template.refresh_from_db()
    assert template.published.number == 2
    step("save and publish")

    # 5. The scheduled message goes out with v1; a new one with v2.
    notify(
        "order-shipped",
        {"email": "bob@example.com", "name": "Bob"},
        {"order_id": "B-2"},
        channels=["email"],
    )
    sweep(now=tomorrow + dt.timedelta(minutes=1))  # tomorrow has come
    run_worker()
    subjects = {m["To"]: m["Subject"] for m in smtp.messages}
    assert subjects == {
        "ann@example.com": "Your order A-7 shipped",
        "bob@example.com": "Good news: order B-2 is on its way",
    }
    bodies = {m["To"]: m.get_body(("plain",)).get_content() for m in smtp.messages}
    assert "it is on its way" in bodies["ann@example.com"]
    assert "left our warehouse" in bodies["bob@example.com"]
    step("a scheduled message goes out with the old version")

    # 6. The history, the difference, and a roll back to v1.
    page.get_by_role("link", name="Versions (2)").click()
    expect(page.locator(".versions-table tbody tr")).to_have_count(2)
    page.get_by_label("Compare v1").check()
    page.get_by_label("Compare v2").check()
    page.get_by_role("button", name="Compare the two chosen").click()
    expect(page.locator(".diff-added").first).to_contain_text("Good news")
    expect(page.locator(".diff-removed").first).to_contain_text("Your order")
    page.go_back()
    page.get_by_role("button", name="Roll back to v1").click()
    expect(page.locator("body")).to_contain_text("v3 is v1 again")
    template.refresh_from_db()
    assert (template.published.number, template.subject) == (3, "Your order {{ order_id }} shipped")
    step("compare versions and roll back")

    # 7. An SMS template counts its segments as it is typed.
    page.goto(f"/admin/campaigns/template/{sms_template.pk}/change/")
    expect(page.locator("#id_subject")).to_have_count(0)  # SMS: a text, no subject or HTML
    expect(page.locator('[data-editor-for="html_body"]')).to_have_count(0)
    sms = page.locator("#template-preview .preview-sms")
    expect(sms).to_contain_text("GSM-7, 1 segment")
    editor(page, "text_body").fill("Order {{ order_id }} shipped. " + "Thank you! " * 14)
    expect(sms).to_contain_text("GSM-7, 2 segments")
    editor(page, "text_body").fill("Order {{ order_id }} shipped 📦")
    expect(sms).to_contain_text("UCS-2, 1 segment")
    step("an SMS template's segment count")
    total = time.monotonic() - started

    origin = live_server.url
    assert requests and all(url.startswith((origin, "data:", "about:")) for url in requests), [
        url for url in requests if not url.startswith((origin, "data:", "about:"))
    ]
    assert len(confirms) == 2  # publish and roll back were each confirmed
    assert Message.objects.get(pk=scheduled.pk).template_version_id == v1.pk  # kept, and sent
    report = "\n".join(f"  {name}: {seconds:.1f} s" for name, seconds in steps)
    print(f"\nThe walk ({total:.1f} s, {len(requests)} requests, all to the site):\n{report}")
    assert Template.objects.get(pk=template.pk).published.number == 3
