"""Channels in the admin, in a real browser: adding and changing a channel of every built-in
backend, validation errors, secrets, permissions, and "Send test" when the provider fails."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from tests import factories
from tests.conftest import free_port

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery"


@pytest.fixture
def superuser(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def marketing_user(transactional_db, django_user_model):
    mia = django_user_model.objects.create_user("mia", "mia@x.io", PASSWORD, is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    return mia


def test_send_test_to_an_smtp_server_that_refuses_says_so(page, marketing_user, admin_login):
    channel = factories.email_channel(port=free_port())  # nothing listens there
    admin_login(page, "mia", PASSWORD)
    page.goto(f"/admin/channels/channelconfig/{channel.pk}/change/")
    page.get_by_role("link", name="Send test").click()
    page.get_by_label("Address").fill("ops@example.com")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Send test").click()
    assert answer.value.status == 200
    expect(
        page.get_by_text("Test not sent: TransientError: SMTP connection to 127.0.0.1:")
    ).to_be_visible()
    expect(page.locator("body")).to_contain_text("Connection refused")
    expect(page.get_by_label("Address")).to_have_value("ops@example.com")  # try again
