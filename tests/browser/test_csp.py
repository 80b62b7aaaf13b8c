"""The Content-Security-Policy, in Chromium: every admin and end-user page carries it, works
under it (the ``page`` fixture fails a test on any violation), and markup that a slip lets
into a page cannot run script."""

from __future__ import annotations

import re

import django_rq
import pytest
from django.contrib.auth.models import Group

from campaigns.conf import app_settings
from channels.models import ChannelConfig
from tests import factories
from tests.browser.conftest import keep_local, watch_csp

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"

# What a page records itself, so a test can wait for the browser's verdict.
RECORD = """document.addEventListener("securitypolicyviolation", (e) =>
  (window.__refused ||= []).push(e.violatedDirective));"""
SLIP = """() => {
  document.body.insertAdjacentHTML("beforeend",
    `<img src="/static/none.png" onerror="document.title='XSS'">`);
  const script = document.createElement("script");
  script.textContent = "document.title = 'XSS'";
  document.body.append(script);
}"""


def policy(response) -> str:
    header = response.headers.get("content-security-policy")
    assert header, f"no Content-Security-Policy on {response.url}"
    return header


def directive(header: str, name: str) -> list[str]:
    for part in header.split(";"):
        words = part.split()
        if words and words[0] == name:
            return words[1:]
    raise AssertionError(f"no {name} in {header!r}")


def test_markup_a_slip_lets_in_cannot_run_script(browser, live_server, django_user_model, db):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    django_user_model.objects.create_user("ann", "ann@example.com", PASSWORD)
    ChannelConfig.objects.update_or_create(
        key="inbox", defaults={"name": "Inbox", "backend": "channels.backends.inbox.InboxBackend"}
    )
    for username, login_url, path in (
        ("ann", "/accounts/login/", "/inbox/"),
        ("root", "/admin/login/", "/admin/"),
    ):
        context = browser.new_context(base_url=live_server.url)
        violations = watch_csp(context)
        keep_local(context, live_server.url)
        context.add_init_script(RECORD)
        page = context.new_page()
        try:
            page.goto(f"{login_url}?next={path}")
            page.locator("input[name=username]").fill(username)
            page.locator("input[name=password]").fill(PASSWORD)
            with page.expect_navigation():
                page.locator("input[name=password]").press("Enter")
            assert page.url.endswith(path), page.url
            title = page.title()
            page.evaluate(SLIP)
            # Both the handler and the script are refused: wait for the browser to say so.
            page.wait_for_function("(window.__refused || []).length >= 2")
            assert sorted(page.evaluate("window.__refused")) == [
                "script-src-attr",
                "script-src-elem",
            ]
            assert page.title() == title
            assert len(violations) >= 2, violations
        finally:
            context.close()


def test_end_user_pages_carry_a_strict_policy_and_work_under_it(page, django_user_model):
    django_user_model.objects.create_user("ann", "ann@example.com", PASSWORD)
    ChannelConfig.objects.update_or_create(
        key="inbox", defaults={"name": "Inbox", "backend": "channels.backends.inbox.InboxBackend"}
    )
    headers = [policy(page.goto("/accounts/login/"))]
    page.locator("input[name=username]").fill("ann")
    page.locator("input[name=password]").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    for path in ("/inbox/", "/preferences/", "/unsubscribe/not-a-token/", "/sw.js"):
        headers.append(policy(page.goto(path)))
    page.goto("/inbox/")
    page.locator("#notifier-badge").wait_for()
    for header in headers:
        script = directive(header, "script-src")
        assert script[0] == "'self'" and not [s for s in script if "unsafe" in s], header
        assert directive(header, "style-src")[0] == "'self'", header
        assert "'unsafe-inline'" not in directive(header, "style-src"), header
        assert directive(header, "object-src") == ["'none'"]
        assert directive(header, "frame-ancestors") == ["'none'"]


def test_admin_pages_carry_the_admin_policy_and_work_under_it(page, django_user_model, admin_login):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    mia = django_user_model.objects.create_user("mia", "mia@x.io", PASSWORD, is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    template = factories.TemplateFactory(channel=factories.memory_channel())
    django_rq.get_queue(app_settings.QUEUE).enqueue("campaigns.jobs.dispatch", [])
    login_policy = policy(page.goto("/admin/login/"))
    admin_login(page, "root", PASSWORD)
    paths = [
        "/admin/",
        "/admin/campaigns/event/",
        f"/admin/campaigns/event/{template.event_id}/change/",
        "/admin/campaigns/template/",
        f"/admin/campaigns/template/{template.pk}/change/",
        "/admin/campaigns/template/export/",
        "/admin/campaigns/template/import/",
        "/admin/campaigns/message/",
        "/admin/campaigns/optout/",
        "/admin/campaigns/campaign/add/",
        "/admin/channels/channelconfig/",
        f"/admin/channels/channelconfig/{template.channel_id}/change/",
        "/admin/auth/user/",
        "/admin/password_change/",
    ]
    headers = [login_policy]
    for path in paths:
        response = page.goto(path)
        assert response.status == 200, path
        headers.append(policy(response))
        if path.startswith("/admin/campaigns/template/") and path.endswith("/change/"):
            page.locator("#template-preview .preview-subject").wait_for()  # htmx, Alpine ran
    for header in headers:
        script = directive(header, "script-src")
        assert "'unsafe-inline'" not in script, header
        assert directive(header, "object-src") == ["'none'"]

    # django-rq's own pages (superusers only) work under theirs.
    for path in ("/django-rq/", "/django-rq/queues/0/"):
        response = page.goto(path)
        assert response.status == 200, path
        assert re.search(r"script-src [^;]*'unsafe-inline'", policy(response))
