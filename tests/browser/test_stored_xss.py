"""Stored XSS: what a Marketing user types into a template or an event never runs as script
in a superuser's admin session (escaped where it is shown; a CSP behind it)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from campaigns.models import Event, Template
from tests import factories
from tests.browser.conftest import keep_local, watch_csp

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"
TITLE = "untouched"

# Each payload, if it ever ran, would change document.title or open a dialog.
PAYLOADS = [
    "<img src=x onerror=\"document.title='XSS-img'\">",
    "<script>document.title='XSS-script'</script>",
    "<svg onload=\"alert('XSS-svg')\"></svg>",
    # Alpine.js (unfold) evaluates x-* attributes of any element it sees
    "<div x-data x-init=\"document.title='XSS-alpine'\"></div>",
]
PAYLOAD = " ".join(PAYLOADS)
# The payloads' elements in the page (the sandboxed HTML preview is another document).
INJECTED = """() => [
    ...document.querySelectorAll("[onerror*=XSS], [onload*=XSS], [x-init*=XSS]"),
    ...[...document.scripts].filter(s => s.text.includes("XSS")),
].map(e => e.outerHTML)"""


def test_a_marketing_payload_never_runs_for_a_superuser(
    page, browser, live_server, django_user_model, admin_login
):
    mia = django_user_model.objects.create_user("mia", "mia@x.io", PASSWORD, is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    channel = factories.memory_channel()
    event = factories.EventFactory(key="promo", variables=[{"name": "who", "sample": "x"}])

    # Marketing writes the payload into the event's variable and the template, in the admin.
    admin_login(page, "mia", PASSWORD)
    page.goto(f"/admin/campaigns/event/{event.pk}/change/")
    variables = [{"name": "who", "label": PAYLOAD, "help": PAYLOAD, "sample": PAYLOAD}]
    for key in ("label", "help", "sample"):  # the variable's row
        page.locator(f"[name=variables-0-{key}]").fill(PAYLOAD)
    with page.expect_navigation():
        page.locator("[name=_continue]").click()
    event.refresh_from_db()
    assert event.variables == variables, page.locator("body").inner_text()

    page.goto("/admin/campaigns/template/add/")
    page.locator("#id_event").select_option(str(event.pk))
    page.locator("#id_language").fill("en")
    with page.expect_navigation():  # the channel brings its fields
        page.locator("#id_channel").select_option(str(channel.pk))
    page.locator("#id_subject").fill(f"Hi {{{{ who }}}} {PAYLOAD}")
    page.locator('[data-editor-for="text_body"] .cm-content').fill(f"Hi {{{{ who }}}} {PAYLOAD}")
    page.locator('[data-editor-for="html_body"] .cm-content').fill(
        f"<p>Hi {{{{ who }}}}</p> {PAYLOAD}"
    )
    with page.expect_navigation():
        page.locator("[name=_continue]").click()
    template = Template.objects.get(event=event)
    assert PAYLOADS[0] in template.text_body

    # The superuser opens it: the live preview loads by itself.
    context = browser.new_context(base_url=live_server.url)
    violations = watch_csp(context)
    keep_local(context, live_server.url)
    root = context.new_page()
    dialogs: list[str] = []
    root.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        admin_login(root, "root", PASSWORD)
        for path in (
            f"/admin/campaigns/template/{template.pk}/change/",
            f"/admin/campaigns/event/{event.pk}/change/",
            "/admin/campaigns/event/",
            "/admin/campaigns/template/",
        ):
            root.goto(path)
            root.evaluate(f"document.title = {TITLE!r}")
            if "template/" in path and "change" in path:
                preview = root.locator("#template-preview")
                expect(preview.locator(".preview-text")).to_contain_text("onerror=")
                expect(preview.locator(".preview-subject")).to_contain_text("x-init=")
                frame = root.frame_locator("iframe.preview-html")
                expect(frame.locator("body")).to_contain_text("Hi")
                # the sample value typed into the field shows as text, not markup
                field = root.locator("input[name=preview_var__who]")
                expect(field).to_have_value(PAYLOAD)
            # Not one of the payloads became an element of the page, so none can run later.
            assert root.evaluate(INJECTED) == [], path
            assert root.evaluate("document.title") == TITLE, path
        assert dialogs == []
        assert violations == []  # escaped: not even an attempt for the CSP to refuse
    finally:
        context.close()
    assert Event.objects.get(pk=event.pk).variables == variables
