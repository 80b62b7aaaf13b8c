"""A superuser makes a service API key and a status webhook endpoint in the admin, in a real
browser: each secret is shown once, after saving, and the pages work under the CSP (the
``page`` fixture fails a test on any violation)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from campaigns.integrations.servicekeys import service_key_authenticate
from campaigns.models import ServiceKey, WebhookEndpoint

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"


@pytest.fixture
def superuser(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


def test_a_new_service_key_is_shown_once(page, superuser, admin_login):
    admin_login(page, "root", PASSWORD)
    page.goto("/admin/campaigns/servicekey/add/")
    page.locator("input[name=name]").fill("shop")
    page.locator("input[name=can_read_messages]").check()
    page.locator("button[name=_save]").click()

    notice = page.get_by_text(re.compile("copy it now"))
    expect(notice).to_be_visible()
    raw = re.search(r"nsk_[\w-]+", notice.inner_text()).group()
    assert service_key_authenticate(raw) == ServiceKey.objects.get()

    page.goto(f"/admin/campaigns/servicekey/{ServiceKey.objects.get().pk}/change/")
    expect(page.locator("body")).not_to_contain_text(raw)
    expect(page.locator("body")).to_contain_text(raw[:12])


def test_a_new_webhook_endpoint_shows_its_secret(page, superuser, admin_login):
    admin_login(page, "root", PASSWORD)
    page.goto("/admin/campaigns/webhookendpoint/add/")
    page.locator("input[name=url]").fill("https://93.184.215.14/hooks/notifier")
    page.get_by_label("Message sent").check()
    page.locator("button[name=_save]").click()

    notice = page.get_by_text(re.compile("signing secret is whsec_"))
    expect(notice).to_be_visible()
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret in notice.inner_text()
    assert endpoint.event_types == ["message.sent"]
