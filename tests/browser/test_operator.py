"""Operator flows in the browser: an opt-out import with a bad row, and HTML previews that
cannot run scripts in the admin's origin."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from campaigns.models import OptOut
from tests import factories

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"


def staff(django_user_model, username: str, role: str):
    user = django_user_model.objects.create_user(
        username, f"{username}@x.io", PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=role))
    return user


def test_support_imports_opt_outs_and_sees_the_bad_row(
    page, django_user_model, admin_login, tmp_path
):
    staff(django_user_model, "sam", "Support")
    factories.EventFactory(key="newsletter")
    csv = tmp_path / "optouts.csv"
    csv.write_text(
        "user,address,channel,event,reason\n"
        ",one@example.com,,newsletter,asked\n"
        ",two@example.com,,no-such-event,asked\n"
    )
    admin_login(page, "sam", PASSWORD)
    page.goto("/admin/campaigns/optout/import/")
    page.locator("input[type=file]").set_input_files(str(csv))
    page.locator("select[name=format]").select_option(label="csv")
    form = page.locator("input[type=file]").locator("xpath=ancestor::form")
    form.locator("[type=submit]").click()
    expect(page.locator("body")).to_contain_text("no event with key 'no-such-event'")
    expect(page.locator("body")).to_contain_text("Line number 2")
    assert OptOut.objects.count() == 0


def test_a_script_in_the_html_preview_does_not_run(page, django_user_model, admin_login):
    staff(django_user_model, "mia", "Marketing")
    template = factories.TemplateFactory(
        channel=factories.memory_channel(),
        html_body="<p id=x>{{ order_id }}</p><script>top.document.title='pwned';"
        "document.getElementById('x').textContent='ran'</script>",
    )
    admin_login(page, "mia", PASSWORD)
    page.goto(f"/admin/campaigns/template/{template.pk}/change/")
    frame = page.frame_locator("iframe.preview-html")
    expect(frame.locator("#x")).to_have_text("A-1")  # the script did not run
    assert page.title() != "pwned"
    assert page.locator("iframe.preview-html").get_attribute("sandbox") == ""
