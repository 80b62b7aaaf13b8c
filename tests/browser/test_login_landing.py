"""Where a login leads, in Chromium: staff to the admin and end users to their inbox, from
either login page, unless a safe ``next`` says otherwise."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from channels.models import ChannelConfig

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"


def log_in(page, login_path: str, username: str) -> str:
    """Fill the page's login form as a person would; the path the browser ends on."""
    page.goto(login_path)
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(PASSWORD)
    with page.expect_navigation():
        page.locator("input[name=password]").press("Enter")
    path = page.evaluate("location.pathname + location.search")
    page.context.clear_cookies()  # log out for the next try
    return path


def test_staff_land_in_the_admin_and_end_users_in_their_inbox(page, django_user_model):
    mia = django_user_model.objects.create_user("mia", "mia@x.io", PASSWORD, is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    django_user_model.objects.create_user("ann", "ann@x.io", PASSWORD)
    ChannelConfig.objects.update_or_create(
        key="inbox", defaults={"name": "Inbox", "backend": "channels.backends.inbox.InboxBackend"}
    )
    landings = {
        ("mia", "/admin/login/"): "/admin/",  # the URL `make run` prints
        ("mia", "/accounts/login/"): "/admin/",
        ("mia", "/admin/login/?next=/admin/campaigns/template/"): "/admin/campaigns/template/",
        ("mia", "/accounts/login/?next=/preferences/"): "/preferences/",
        ("mia", "/accounts/login/?next=https://evil.example/"): "/admin/",  # not safe: ignored
        ("ann", "/accounts/login/"): "/inbox/",
        ("ann", "/accounts/login/?next=/preferences/"): "/preferences/",
        ("ann", "/accounts/login/?next=//evil.example/x"): "/inbox/",
    }
    arrived = {(user, login): log_in(page, login, user) for user, login in landings}
    assert arrived == landings
