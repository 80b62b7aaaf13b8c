"""A Marketing user runs a campaign in the browser: a contact list imported from a CSV, the
campaign built in the admin, its dry run and a test send, then "Send now" while a real RQ
worker process sends it and the htmx progress bar climbs to 100%."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from campaigns.api import notify
from campaigns.broadcast.fanout import campaign_schedule
from campaigns.models import Audience, Campaign, CampaignStatus, Message
from channels.backends import locmem
from tests import factories
from tests.conftest import output, worker_queues

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"
SHOTS = "/tmp/notifier-campaign"  # noqa: S108 - fixed paths, to look at
# Sending takes a worker process a few seconds to start and a poll a second to show.
SENDING_MS = 60_000

CONTACTS = (
    "email,phone,name,language,plan\n"
    "ann@example.com,,Ann,en,gold\n"
    "bert@example.de,,Bert,de,silver\n"
    "chloe@example.com,,Chloé,,gold\n"
    ",+4915100000042,Phone only,en,free\n"
)


@pytest.fixture
def newsletter(transactional_db, settings):
    """The 'newsletter' event on the 'mail' channel (locmem, reads ``email``), en and de."""
    settings.NOTIFIER = {**settings.NOTIFIER, "CAMPAIGN_CHUNK": 2}
    mail = factories.memory_channel("mail")
    event = factories.EventFactory(
        key="newsletter",
        name="Newsletter",
        marketing=True,
        variables=[{"name": "headline", "label": "Headline", "sample": "News"}],
    )
    for language in ("en", "de"):
        factories.TemplateFactory(
            event=event,
            channel=mail,
            language=language,
            subject=f"[{language}] {{{{ headline }}}}",
            text_body="{{ headline }} for {{ recipient.name }} on the {{ recipient.plan }} plan",
        )
    return event


@pytest.mark.slow  # a real worker process sends the campaign
def test_marketing_builds_tests_and_sends_a_campaign_and_watches_it_finish(
    page, django_user_model, admin_login, newsletter, spawn, close_db_after, tmp_path
):
    mia = django_user_model.objects.create_user("mia", "mia@x.io", PASSWORD, is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    admin_login(page, "mia", PASSWORD)

    # A contact list, filled from a CSV through the import preview.
    page.goto("/admin/campaigns/audience/add/")
    page.locator("#id_name").fill("Spring customers")
    page.locator("#id_kind").select_option(label="Imported contact list")
    page.locator("[name=_save]").click()
    expect(page.locator("body")).to_contain_text("was added successfully")
    audience = Audience.objects.get(name="Spring customers")
    assert audience.kind == "contacts"

    csv = tmp_path / "contacts.csv"
    csv.write_text(CONTACTS)
    page.goto("/admin/campaigns/contact/import/")
    page.locator("input[type=file]").set_input_files(str(csv))
    page.locator("select[name=format]").select_option(label="csv")
    page.locator("select[name=audience]").select_option(label="Spring customers")
    page.locator("input[type=file]").locator("xpath=ancestor::form").locator(
        "[type=submit]"
    ).click()
    expect(page.locator("body")).to_contain_text("bert@example.de")  # the preview
    assert audience.contacts.count() == 0
    page.locator("form[action$='process_import/'] [type=submit]").click()
    expect(page.locator("body")).to_contain_text("Import finished: 4 new")
    assert audience.contacts.get(email="ann@example.com").data == {"plan": "gold"}

    # The campaign, built in the add form.
    page.goto("/admin/campaigns/campaign/add/")
    page.locator("#id_name").fill("Spring sale")
    page.locator("#id_event").select_option(label="Newsletter")
    page.locator("#id_channels_from").select_option(label="mail")
    page.locator("#id_channels_add").click()
    page.locator("#id_audience").select_option(label="Spring customers")
    page.get_by_label("Headline").fill("Spring sale")  # the event's variable, a field of its own
    page.locator("[name=_continue]").click()
    expect(page.locator("body")).to_contain_text("was added successfully")
    campaign = Campaign.objects.get()
    assert list(campaign.channels.values_list("key", flat=True)) == ["mail"]
    panel = page.locator("#campaign-panel")
    expect(panel.locator(".campaign-status")).to_have_text("Draft")

    # The dry run: three messages (en 2, de 1), the phone-only contact skipped.
    panel.get_by_role("link", name="Dry run").click()
    summary = page.locator("#dry-run-summary")
    expect(summary.locator("[data-count=recipients]")).to_have_text("4")
    expect(summary.locator("[data-count=messages]")).to_have_text("3")
    expect(summary.locator("[data-count=skipped]")).to_have_text("1")
    planned = page.locator("#dry-run-planned tbody tr")
    expect(planned).to_have_text([re.compile(r"mail\s*de\s*1"), re.compile(r"mail\s*en\s*2")])
    expect(page.locator("#dry-run-skipped tbody tr")).to_have_text(
        [re.compile(r"mail\s*no address\s*1")]
    )
    page.screenshot(path=f"{SHOTS}-dry-run.png", full_page=True)
    assert not Message.objects.exists()

    # A test send to the operator's own address.
    page.get_by_role("link", name="Back to the campaign").click()
    page.locator("#campaign-panel").get_by_role("link", name="Send test").click()
    page.get_by_label("Addresses").fill("mia@x.io")
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#test-send-results tbody tr")).to_have_count(1)
    expect(page.locator("#test-send-results tr.test-ok")).to_contain_text("mia@x.io")
    assert [(m.address, m.subject) for m in locmem.outbox] == [
        ("mia@x.io", "[Test] [en] Spring sale")
    ]

    # Send now, with a worker process running, and watch the bar.
    worker = spawn("rqworker", *worker_queues(), "--worker-class", "rq.worker.SimpleWorker")
    page.get_by_role("link", name="Back to the campaign").click()
    confirms = []

    def accept(dialog):
        confirms.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.locator("#campaign-panel").get_by_role("button", name="Send now").click()
    expect(page.locator("body")).to_contain_text("Sending to 4 recipients.")
    assert confirms == ["Send this campaign now?"]
    progress = page.locator("#campaign-progress")
    expect(progress).to_be_visible()
    expect(progress.locator(".campaign-percent")).to_have_text("100%", timeout=SENDING_MS)
    assert worker.poll() is None, output(worker)
    expect(progress.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(progress.locator("[data-count=sent]")).to_have_text("3")
    expect(progress.locator("[data-count=skipped]")).to_have_text("1")
    expect(page.locator("#campaign-panel .campaign-status")).to_have_text("Done")
    page.screenshot(path=f"{SHOTS}-progress.png")

    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DONE
    assert sorted(
        Message.objects.filter(campaign=campaign).values_list("address", "language", "status")
    ) == [
        ("ann@example.com", "en", "sent"),
        ("bert@example.de", "de", "sent"),
        ("chloe@example.com", "en", "sent"),
    ]
    report = page.locator("#campaign-panel").get_by_role("link", name="Report")
    expect(report).to_be_visible()


def test_marketing_follows_the_reports_messages_link_and_reads_only_that_campaign(
    page, django_user_model, admin_login, newsletter, run_worker
):
    """The report's link leads Marketing to the campaign's messages (not the message admin's
    403): read-only, addresses masked; tampering with the URL reaches nothing else."""
    mia = django_user_model.objects.create_user("mia", "mia@x.io", PASSWORD, is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    campaigns = {}
    for name, people in (
        ("Spring", [("ann@example.com", "en"), ("bert@example.de", "de")]),
        ("Other", [("zoe@example.org", "en")]),
    ):
        audience = Audience.objects.create(name=name, kind="contacts")
        for email, language in people:
            audience.contacts.create(email=email, name=email[:3].title(), language=language)
        campaigns[name] = Campaign.objects.create(
            name=name, event=newsletter, audience=audience, context={"headline": "Sale"}
        )
        campaign_schedule(campaigns[name])
    sent = notify(newsletter, {"email": "secret@example.net"}, {"headline": "x"})
    (transactional,) = sent.messages
    run_worker()
    spring, other = campaigns["Spring"], campaigns["Other"]
    assert set(Message.objects.values_list("status", flat=True)) == {"sent"}

    admin_login(page, "mia", PASSWORD)
    page.goto(f"/admin/campaigns/campaign/{spring.pk}/report/")
    with page.expect_navigation() as navigation:
        page.get_by_role("link", name="Its messages").click()
    assert navigation.value.status == 200
    messages_url = f"/admin/campaigns/campaign/{spring.pk}/messages/"
    assert page.url.endswith(messages_url)
    rows = page.locator("#campaign-messages tbody tr")
    expect(rows).to_have_text(
        [
            re.compile(r"mail\s*en\s*a•••@example\.com\s*sent\s*1"),
            re.compile(r"mail\s*de\s*b•••@example\.de\s*sent\s*1"),
        ]
    )
    expect(page.locator("#campaign-messages-statuses")).to_contain_text("sent (2)")
    body = page.locator("body").inner_text()
    for secret in ("ann@example.com", "bert@example.de", "zoe@", "secret@", "Sale for"):
        assert secret not in body, secret
    editable = page.locator("#campaign-messages-page").locator(
        "form, input, textarea, select, button, [contenteditable]"
    )
    expect(editable).to_have_count(0)
    page.screenshot(path=f"{SHOTS}-messages.png", full_page=True)

    # URL tampering: other campaigns' and transactional messages stay out of reach.
    for query in (
        f"campaign__id__exact={other.pk}",
        "campaign__isnull=True",
        f"id={transactional.pk}",
    ):
        response = page.goto(f"{messages_url}?{query}")
        assert response.status == 400, query
        assert "unknown filter" in page.locator("body").inner_text()
        assert "@" not in page.locator("body").inner_text()
    for path in (
        "/admin/campaigns/message/",
        f"/admin/campaigns/message/{transactional.pk}/change/",
    ):
        assert page.goto(path).status == 403, path
    assert page.goto(f"/admin/campaigns/campaign/{spring.pk}/messages/?status=failed").status == 200
    expect(rows).to_have_text(["No message matches."])
