"""Support answers Alice from her timeline, in a real browser: "Send a message", write, review,
confirm; a worker sends it to the SMTP sink and it is the newest line of her timeline.
Marketing cannot open the form."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from campaigns.models import Message
from tests import factories
from tests.browser.axe import assert_accessible

pytestmark = pytest.mark.browser
PASSWORD = "support-pw-123"
TEXT = "Hello Alice,\nyour parcel left today. {{ 7|add:1 }} <b>not bold</b>"


@pytest.fixture
def people(django_user_model, smtp_server):
    smtp, port = smtp_server
    factories.email_channel(port=port)
    alice = django_user_model.objects.create_user(
        "alice", "alice@example.com", first_name="Alice", last_name="Archer"
    )
    for name, role in (("sam", "Support"), ("mia", "Marketing")):
        user = django_user_model.objects.create_user(name, f"{name}@x.io", PASSWORD, is_staff=True)
        user.groups.add(Group.objects.get(name=role))
    return {"smtp": smtp, "alice": alice}


def test_support_sends_alice_a_message_from_her_timeline(page, people, admin_login, run_worker):
    alice = people["alice"]
    admin_login(page, "sam", PASSWORD)
    page.goto(f"/admin/campaigns/message/people/user/{alice.pk}/")
    page.get_by_role("link", name="Send a message").click()
    expect(page.locator("#send-title")).to_have_text("Send a message to Alice Archer")
    assert_accessible(page)
    page.get_by_label("Channel").select_option("email")
    page.get_by_label("Subject").fill("Your parcel")
    page.get_by_label("Text").fill(TEXT)
    page.get_by_role("button", name="Review and send").click()

    confirm = page.locator("#send-confirm")
    expect(confirm).to_contain_text("Send this to Alice Archer on Email?")
    expect(page.locator("#confirm-text")).to_have_text(TEXT)  # shown as written, not as HTML
    assert not Message.objects.exists()
    assert_accessible(page)
    confirm.get_by_role("button", name="Yes, send it").click()

    expect(page.locator("#person-name")).to_have_text("Alice Archer")  # back on the timeline
    expect(page.get_by_text("The message to Alice Archer is on its way.")).to_be_visible()
    assert run_worker() >= 1
    (received,) = people["smtp"].messages
    assert received["To"] == "alice@example.com" and received["Subject"] == "Your parcel"
    assert received.get_content().replace("\r\n", "\n").strip() == TEXT
    page.reload()
    row = page.locator('#timeline tr[data-kind="message"]').first
    expect(row).to_have_attribute("data-event", "adhoc")
    expect(row).to_have_attribute("data-status", "sent")
    expect(row).to_contain_text("Your parcel")


def test_marketing_cannot_open_the_form(page, people, admin_login):
    admin_login(page, "mia", PASSWORD)
    response = page.goto(f"/admin/campaigns/message/people/user/{people['alice'].pk}/send/")
    assert response.status == 403
    assert not Message.objects.exists()
