"""A Marketing user imports a contact list whose file has a bad row: with "Skip rows with
errors" ticked the preview sums the file up and lists the bad row, and the confirmation
imports the others."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from campaigns.models import Audience

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"

CONTACTS = (
    "email,name,tz,plan\n"
    "ann@example.com,Ann,Europe/Berlin,gold\n"
    "not-an-email,Bad,Europe/Berlin,gold\n"
    "cy@example.com,Cy,Mars/Olympus,free\n"
    "dee@example.com,Dee,,silver\n"
)


def test_marketing_imports_a_file_skipping_its_bad_rows(
    page, django_user_model, admin_login, tmp_path
):
    mia = django_user_model.objects.create_user("mia", "mia@x.io", PASSWORD, is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    audience = Audience.objects.create(name="Spring customers", kind="contacts")
    admin_login(page, "mia", PASSWORD)

    csv = tmp_path / "contacts.csv"
    csv.write_text(CONTACTS)
    page.goto("/admin/campaigns/contact/import/")
    page.locator("input[type=file]").set_input_files(str(csv))
    page.locator("select[name=format]").select_option(label="csv")
    page.locator("select[name=audience]").select_option(label="Spring customers")
    page.get_by_label("Skip rows with errors").check()
    page.locator("input[type=file]").locator("xpath=ancestor::form").locator(
        "[type=submit]"
    ).click()

    # The preview: the summary, and the rows that will be left out with their problem.
    summary = page.locator("#import-summary")
    expect(summary.locator("[data-count=new]")).to_have_text("2")
    expect(summary.locator("[data-count=invalid]")).to_have_text("2")
    skipped = page.locator("#import-skipped tbody tr")
    expect(skipped).to_have_count(2)
    expect(skipped.nth(0)).to_contain_text("2")
    expect(skipped.nth(0)).to_contain_text("email")
    expect(skipped.nth(0)).to_contain_text("not-an-email")
    expect(skipped.nth(0)).to_contain_text("Enter a valid email address.")
    expect(skipped.nth(1)).to_contain_text("'Mars/Olympus' is not a known timezone")
    expect(page.locator("#import-preview")).to_contain_text("dee@example.com")
    assert audience.contacts.count() == 0

    page.locator("form[action$='process_import/'] [type=submit]").click()
    expect(page.locator("body")).to_contain_text(
        "Import finished: 2 new, 0 updated, 0 unchanged, 2 skipped for errors."
    )
    expect(page.locator("body")).to_contain_text("Row 2 (email): Enter a valid email address.")
    assert sorted(audience.contacts.values_list("email", flat=True)) == [
        "ann@example.com",
        "dee@example.com",
    ]
