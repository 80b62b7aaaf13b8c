"""A Marketing user edits a template and watches the live preview (htmx, no reload)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from tests import factories

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"


def test_marketing_sees_the_preview_follow_their_typing(
    page, django_user_model, admin_login, tmp_path
):
    mia = django_user_model.objects.create_user("mia", "mia@x.io", PASSWORD, is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    template = factories.TemplateFactory(
        channel=factories.memory_channel(),
        html_body="<mjml><mj-body><mj-text>Order {{ order_id }}</mj-text></mj-body></mjml>",
    )
    admin_login(page, "mia", PASSWORD)
    page.goto(f"/admin/campaigns/template/{template.pk}/change/")
    preview = page.locator("#template-preview")
    expect(preview.locator(".preview-subject")).to_have_text("Order A-1 shipped")
    page.evaluate("window.__marker = 'same page'")  # gone if the page reloads

    page.locator("#id_subject").fill("Your order {{ order_id }} left our warehouse")
    expect(preview.locator(".preview-subject")).to_have_text("Your order A-1 left our warehouse")
    frame = page.frame_locator("iframe.preview-html")
    expect(frame.locator("body")).to_contain_text("Order A-1")

    text_body = page.locator('[data-editor-for="text_body"] .cm-content')  # the code editor
    text_body.fill("Hello\n{% if recipient.name %}\nno end")
    expect(preview.locator(".preview-errors")).to_contain_text("line 2")
    expect(preview.locator(".preview-errors")).to_contain_text("endif")

    page.locator(".template-preview-panel summary").click()
    page.locator("#id_preview_context").fill('{"order_id": "Z-9"}')
    text_body.fill("Order {{ order_id }}")
    expect(preview.locator(".preview-text")).to_have_text("Order Z-9")
    assert page.evaluate("window.__marker") == "same page"
    page.screenshot(path=tmp_path / "template-preview.png", full_page=True)


def test_marketing_sends_a_test_and_sees_the_result(
    page, django_user_model, admin_login, smtp_server, tmp_path
):
    sink, port = smtp_server
    mia = django_user_model.objects.create_user("mia", "mia@x.io", PASSWORD, is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    template = factories.TemplateFactory(channel=factories.email_channel(port=port))
    admin_login(page, "mia", PASSWORD)
    page.goto(f"/admin/campaigns/template/{template.pk}/change/")
    page.get_by_role("link", name="Send test").click()
    page.get_by_label("Address").fill("qa@example.com")
    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_text("Test sent to qa@example.com")).to_be_visible()
    assert [m["To"] for m in sink.messages] == ["qa@example.com"]
    page.screenshot(path=tmp_path / "send-test.png", full_page=True)
