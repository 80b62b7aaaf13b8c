"""Campaigns in the admin, as the Marketing and Support roles use them: the add form, the
dry run, test sends, send now with a real RQ worker, progress, the report and its CSV, pause /
resume / cancel, permissions and CSRF, contact imports, and audience sizes."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from html import unescape
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from openpyxl import Workbook

from campaigns.api import notify
from campaigns.broadcast.report import REPORT_COLUMNS
from campaigns.models import (
    Audience,
    Campaign,
    CampaignChunk,
    CampaignStatus,
    Contact,
    Message,
    OptOut,
)
from channels.backends import locmem
from tests import factories

CHANGELIST = "/admin/campaigns/campaign/"
IMPORT = "/admin/campaigns/contact/import/"
PROCESS_IMPORT = "/admin/campaigns/contact/process_import/"
CSV_FORMAT, XLSX_FORMAT = "0", "1"  # positions in the import form's format choices


@pytest.fixture
def setup(settings, db):
    """A marketing event with two variables on the 'mail' channel (locmem, reads ``email``;
    en and de templates), and chunks of 3 recipients."""
    settings.NOTIFIER = {**settings.NOTIFIER, "CAMPAIGN_CHUNK": 3}
    mail = factories.memory_channel("mail")
    event = factories.EventFactory(
        key="newsletter",
        marketing=True,
        variables=[
            {"name": "headline", "label": "Headline", "sample": "News"},
            {"name": "offer", "label": "Offer", "sample": "10%"},
        ],
    )
    for language in ("en", "de"):
        factories.TemplateFactory(
            event=event,
            channel=mail,
            language=language,
            subject=f"[{language}] {{{{ headline }}}}",
            text_body="{{ headline }}: {{ offer }} for {{ recipient.name }} ({{ recipient.plan }})",
        )
    return event, mail


def staff_client(django_user_model, username: str, role: str | None) -> Client:
    user = django_user_model.objects.create_user(username, f"{username}@x.io", "pw", is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))  # the group the roles migration made
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def marketing(django_user_model, db) -> Client:
    return staff_client(django_user_model, "mia", "Marketing")


@pytest.fixture
def support(django_user_model, db) -> Client:
    return staff_client(django_user_model, "sam", "Support")


def contact_list(name: str, rows: list[dict]) -> Audience:
    audience = Audience.objects.create(name=name, kind="contacts")
    Contact.objects.bulk_create([Contact(audience=audience, **row) for row in rows])
    return audience


def people(n: int) -> list[dict]:
    """Contacts c0…c{n-1}; every third speaks German."""
    return [
        {
            "email": f"c{i}@example.com",
            "name": f"C{i}",
            "language": "de" if i % 3 == 1 else "",
            "data": {"plan": "pro"},
        }
        for i in range(n)
    ]


def make_campaign(event, audience, channel, **fields) -> Campaign:
    fields.setdefault("context", {"headline": "Spring sale", "offer": "20%"})
    campaign = Campaign.objects.create(name="Spring", event=event, audience=audience, **fields)
    campaign.channels.set([channel])
    return campaign


def url(campaign: Campaign, action: str) -> str:
    return f"{CHANGELIST}{campaign.pk}/{action}/"


def act(client: Client, campaign: Campaign, action: str) -> list[str]:
    """POST a state change, follow the redirect back to the campaign, and return the
    messages that page showed (showing them uses them up)."""
    response = client.post(url(campaign, action), follow=True)
    assert response.redirect_chain == [(url(campaign, "change"), 302)], response.status_code
    return [str(m) for m in response.context["messages"]]


def shown(response) -> list[str]:
    """The messages the page a redirect led to showed."""
    return [str(m) for m in response.context["messages"]]


class FormNesting(HTMLParser):
    """For each ``<form>`` of a page, by its action, the ids of the forms around it (a
    browser drops a form nested in another: its buttons submit the outer form)."""

    def __init__(self, page: str):
        super().__init__()
        self.open: list[str] = []
        self.around: dict[str, list[str]] = {}
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "form":
            attrs = dict(attrs)
            self.around[attrs.get("action") or ""] = list(self.open)
            self.open.append(attrs.get("id") or attrs.get("action") or "")

    def handle_endtag(self, tag):
        if tag == "form" and self.open:
            self.open.pop()


def text(response) -> str:
    """A page's text without tags and with runs of whitespace collapsed."""
    page = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", unescape(page))


# --- the add form ------------------------------------------------------------------------


def test_marketing_adds_a_campaign_and_a_missing_variable_is_named(setup, marketing):
    event, mail = setup
    audience = contact_list("Customers", people(2))
    form = {
        "name": "Spring",
        "event": event.pk,
        "channels": [mail.pk],
        "audience": audience.pk,
        "context__headline": "Spring sale",
        "send_at_0": "",
        "send_at_1": "",
        "local_time": "",
    }
    page = marketing.get(f"{CHANGELIST}add/?event={event.pk}")
    assert page.status_code == 200
    html = page.content.decode()  # a field per variable of the event, not a JSON box
    assert 'name="context__headline"' in html and 'name="context__offer"' in html

    response = marketing.post(f"{CHANGELIST}add/", form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["context"]
    assert errors["context"] == ["Offer: required"]
    assert not Campaign.objects.exists()

    response = marketing.post(
        f"{CHANGELIST}add/", {**form, "context__headline": "Spring sale", "context__offer": "20%"}
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get()
    assert (campaign.name, campaign.status, campaign.created_by) == (
        "Spring",
        CampaignStatus.DRAFT,
        marketing.user,
    )
    assert campaign.context == {"headline": "Spring sale", "offer": "20%"}
    assert list(campaign.channels.all()) == [mail]
    page = marketing.get(url(campaign, "change"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="campaign-panel"' in html and "Send now" in html
    assert "Send this campaign now?" in html
    assert 'id="campaign-progress"' not in html  # a draft has nothing to watch
    forms = FormNesting(html).around
    assert forms[url(campaign, "schedule")] == []  # not inside the change form
    assert forms[""] == []  # the change form itself


# --- dry run and test send -----------------------------------------------------------------


def test_the_dry_run_page_counts_per_channel_and_language_and_writes_nothing(setup, marketing):
    event, mail = setup
    audience = contact_list("Customers", people(9))
    Contact.objects.create(audience=audience, phone="+4915100000001", name="Phone only")
    OptOut.objects.create(address="c0@example.com", channel=mail)
    campaign = make_campaign(event, audience, mail)

    response = marketing.get(url(campaign, "dry-run"))

    assert response.status_code == 200
    assert response.context["planned"] == [("mail", "de", 3), ("mail", "en", 5)]
    assert response.context["skipped"] == [("mail", "no address", 1), ("mail", "opted out", 1)]
    page = text(response)
    assert "10 recipients in “Customers”: 8 messages would be sent, 2 skipped." in page
    assert "mail de 3" in page and "mail en 5" in page
    assert "mail no address 1" in page and "mail opted out 1" in page
    assert "It cannot be sent yet" not in page
    assert not Message.objects.exists() and not CampaignChunk.objects.exists()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


@pytest.mark.django_db
def test_a_large_audience_is_counted_in_the_background_with_progress(
    setup, marketing, settings, run_worker, committed
):
    """Above DRY_RUN_INLINE_LIMIT the dry run is an RQ job: the page polls its progress,
    then shows the same counts the request would have; an edit makes it stale."""
    settings.NOTIFIER = {**settings.NOTIFIER, "DRY_RUN_INLINE_LIMIT": 4}
    event, mail = setup
    campaign = make_campaign(event, contact_list("Customers", people(9)), mail)

    with committed():  # the page enqueues the dry run's job
        response = marketing.get(url(campaign, "dry-run"))
    assert response.context["pending"] is True
    assert 'hx-get="{}"'.format(url(campaign, "dry-run-status")) in response.content.decode()
    assert "Counting 9 recipients in the background" in text(response)
    status = marketing.get(url(campaign, "dry-run-status"))
    assert "HX-Refresh" not in status  # still running: keep polling

    assert run_worker() == 1
    status = marketing.get(url(campaign, "dry-run-status"))
    assert status["HX-Refresh"] == "true"
    response = marketing.get(url(campaign, "dry-run"))
    assert response.context["planned"] == [("mail", "de", 3), ("mail", "en", 6)]
    assert "9 recipients in “Customers”: 9 messages would be sent, 0 skipped." in text(response)
    assert "Counted in the background" in text(response)
    assert not Message.objects.exists()

    campaign.name = "Edited"
    campaign.save()  # stale: the next visit counts again
    with committed():
        assert marketing.get(url(campaign, "dry-run")).context["pending"] is True
    assert run_worker() == 1
    with committed():
        assert marketing.post(url(campaign, "dry-run")).context["pending"] is True  # "Run again"


def test_the_dry_run_of_a_campaign_that_cannot_be_sent_says_why(setup, marketing):
    event, mail = setup
    campaign = make_campaign(
        event, Audience.objects.create(name="Nobody", kind="contacts"), mail, context={}
    )
    page = text(marketing.get(url(campaign, "dry-run")))
    assert "It cannot be sent yet" in page
    assert "missing declared variable(s): headline, offer" in page
    assert "the audience 'Nobody' is empty" in page


def test_the_test_send_page_sends_to_each_address_and_reports_the_ones_no_channel_takes(
    setup, marketing
):
    event, mail = setup
    campaign = make_campaign(event, contact_list("Customers", people(1)), mail)
    assert marketing.get(url(campaign, "test-send")).status_code == 200

    response = marketing.post(
        url(campaign, "test-send"), {"addresses": "ann@example.com, not-an-address"}
    )

    assert response.status_code == 200
    rows = {(channel, address): result for channel, address, result in response.context["rows"]}
    assert set(rows) == {("mail", "ann@example.com"), ("", "not-an-address")}
    assert rows[("mail", "ann@example.com")].ok
    assert not rows[("", "not-an-address")].ok
    (sent,) = locmem.outbox
    assert (sent.address, sent.subject) == ("ann@example.com", "[Test] [en] Spring sale")
    assert sent.text.startswith("Spring sale: 20% for ")
    page = text(response)
    assert "ann@example.com mail Sent (locmem-1)" in page
    assert "not-an-address — Not sent: not an address for any of: mail" in page
    assert not Message.objects.exists()

    response = marketing.post(url(campaign, "test-send"), {"addresses": " , "})
    assert "Type at least one address." in text(response)
    assert response.context["rows"] is None and len(locmem.outbox) == 1


# --- sending, progress and the report --------------------------------------------------------


@pytest.mark.django_db
def test_the_report_csv_shows_addresses_to_who_may_open_messages_and_never_a_formula(
    setup, run_worker, committed, django_user_model
):
    """A superuser gets every address and user id; a cell a spreadsheet would run as a
    formula (an address may start with "=") is written as text, for everyone."""
    event, mail = setup
    hostile = [
        {"email": "=1+2@example.com", "name": "H"},  # "=" and "+" are valid in a local part
        {"email": "-3@example.com", "name": "P"},
        {"email": "plain@example.com", "name": "Q"},
    ]
    campaign = make_campaign(event, contact_list("Hostile", hostile), mail)
    admin = staff_client(django_user_model, "root", None)
    admin.user.is_superuser = True
    admin.user.save()
    with committed():
        assert act(admin, campaign, "schedule") == ["Sending to 3 recipients."]
    run_worker()
    response = admin.get(url(campaign, "report.csv"))
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row[3] for row in rows[1:]} == {
        "'=1+2@example.com",
        "'-3@example.com",
        "plain@example.com",
    }
    assert {row[5] for row in rows[1:]} == {"sent"}
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


@pytest.mark.django_db
def test_send_now_runs_on_the_worker_and_progress_report_and_csv_follow(
    setup, marketing, run_worker, committed
):
    event, mail = setup
    audience = contact_list("Customers", people(7))
    campaign = make_campaign(event, audience, mail)

    with committed():
        assert act(marketing, campaign, "schedule") == ["Sending to 7 recipients."]

    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.RUNNING
    assert CampaignChunk.objects.filter(campaign=campaign).count() == 3  # 7 in chunks of 3
    page = marketing.get(url(campaign, "change")).content.decode()
    # The panel polls while it runs, saying which state its buttons were drawn for.
    assert f'hx-get="{url(campaign, "progress")}?status=running"' in page
    for action in ("pause", "cancel"):
        assert FormNesting(page).around[url(campaign, action)] == []
    before = marketing.get(url(campaign, "progress"))
    assert before.status_code == 200  # htmx keeps polling
    assert 'aria-valuenow="0"' in before.content.decode()

    assert run_worker() >= 3  # three chunk jobs, then their dispatch jobs

    after = marketing.get(url(campaign, "progress"))
    assert after.status_code == 286  # htmx stops polling
    assert "HX-Refresh" not in after
    html = after.content.decode()
    assert 'aria-valuenow="100"' in html and "100%" in html
    assert re.search(r'data-count="sent">\s*7\s*<', html)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DONE and campaign.finished_at is not None
    assert len(locmem.outbox) == 7
    # A page drawn while it was running reloads, so its buttons follow the new state.
    stale = marketing.get(url(campaign, "progress") + "?status=running")
    assert stale.status_code == 286 and stale["HX-Refresh"] == "true"
    assert "HX-Refresh" not in marketing.get(url(campaign, "progress") + "?status=done")
    page = marketing.get(url(campaign, "change")).content.decode()
    assert "/progress/" not in page and "Pause</button>" not in page and "Report</a>" in page

    report = marketing.get(url(campaign, "report"))
    assert report.status_code == 200
    assert report.context["statuses"] == ["sent"]
    assert report.context["totals"] == [("mail", "de", [2], 2), ("mail", "en", [5], 5)]
    assert "No failures." in text(report)

    response = marketing.get(url(campaign, "report.csv"))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="campaign-{campaign.pk}.csv"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == list(REPORT_COLUMNS)
    messages = {str(m.uuid): m for m in Message.objects.filter(campaign=campaign)}
    assert len(rows) - 1 == len(messages) == 7
    by_uuid = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert set(by_uuid) == set(messages)
    first = by_uuid[str(Message.objects.get(address="c1@example.com").uuid)]
    assert (first["channel"], first["language"], first["status"]) == ("mail", "de", "sent")
    assert all(row["sent_at"] for row in by_uuid.values())
    # Marketing may not open messages: addresses masked as on the messages page, no user id.
    assert {row["address"] for row in by_uuid.values()} == {"c•••@example.com"}
    assert not any(f"c{i}@example.com" in body for i in range(7))
    assert {row["user_id"] for row in by_uuid.values()} == {""}


@pytest.mark.django_db
def test_pause_resume_and_cancel_change_the_state_and_say_so(
    setup, marketing, run_worker, committed
):
    event, mail = setup
    campaign = make_campaign(event, contact_list("Customers", people(5)), mail)

    with committed():
        assert act(marketing, campaign, "pause") == [
            "Only a running campaign can be paused; this one is draft."
        ]
    with committed():
        act(marketing, campaign, "schedule")
    with committed():
        assert act(marketing, campaign, "pause") == ["Paused: 0 messages are held."]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    run_worker()  # the chunk jobs find the campaign paused and leave their chunks
    assert locmem.outbox == []
    assert set(CampaignChunk.objects.values_list("status", flat=True)) == {"pending"}
    page = marketing.get(url(campaign, "change")).content.decode()
    assert "Resume" in page and "Pause</button>" not in page

    with committed():
        assert act(marketing, campaign, "resume") == ["Resumed: 0 messages queued again."]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.RUNNING
    run_worker()
    assert len(locmem.outbox) == 5
    assert marketing.get(url(campaign, "progress")).status_code == 286

    with committed():
        assert act(marketing, campaign, "cancel") == [
            "This campaign is done: there is nothing to cancel."
        ]

    other = make_campaign(event, contact_list("More", people(4)), mail)
    with committed():
        act(marketing, other, "schedule")
    with committed():
        act(marketing, other, "pause")
    with committed():
        assert act(marketing, other, "cancel") == ["Cancelled: 0 messages will not be sent."]
    other.refresh_from_db()
    assert other.status == CampaignStatus.CANCELLED and other.cancelled_at is not None
    run_worker()
    assert len(locmem.outbox) == 5  # nothing of the cancelled campaign was sent
    assert set(CampaignChunk.objects.filter(campaign=other).values_list("status", flat=True)) == {
        "cancelled"
    }
    progress = marketing.get(url(other, "progress"))
    assert progress.status_code == 286 and 'aria-valuenow="100"' in progress.content.decode()


@pytest.mark.django_db
def test_a_campaign_for_later_is_scheduled_and_goes_back_to_draft(setup, marketing, committed):
    event, mail = setup
    send_at = timezone.now() + dt.timedelta(days=3)
    campaign = make_campaign(event, contact_list("Customers", people(2)), mail, send_at=send_at)
    page = marketing.get(url(campaign, "change")).content.decode()
    assert "Schedule this campaign?" in page and "Schedule</button>" in page

    with committed():
        (message,) = act(marketing, campaign, "schedule")

    when = timezone.localtime(send_at).strftime("%Y-%m-%d %H:%M")
    assert message.startswith(f"Scheduled for {when}")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED and not CampaignChunk.objects.exists()
    with committed():
        assert act(marketing, campaign, "unschedule") == ["Back to draft."]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


@pytest.mark.django_db
def test_a_campaign_at_a_local_time_says_when_it_delivers(setup, marketing, committed):
    event, mail = setup
    day = timezone.now().date() + dt.timedelta(days=2)
    campaign = make_campaign(
        event,
        contact_list("Customers", people(2)),
        mail,
        send_at=dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC),
        local_time=dt.time(9),
    )
    page = marketing.get(url(campaign, "change")).content.decode()
    assert "Schedule this campaign?" in page and "Send this campaign now?" not in page

    only_time = make_campaign(event, campaign.audience, mail, local_time=dt.time(9))
    page = marketing.get(url(only_time, "change")).content.decode()
    assert "Schedule this campaign?" in page and "Send this campaign now?" not in page

    with committed():
        assert act(marketing, campaign, "schedule") == [
            f"Scheduled: it delivers at 09:00 in each recipient's timezone on {day:%Y-%m-%d}."
        ]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED


def test_a_campaign_that_cannot_be_sent_stays_a_draft_and_says_why(setup, marketing):
    event, mail = setup
    campaign = make_campaign(event, Audience.objects.create(name="Nobody", kind="contacts"), mail)
    (message,) = act(marketing, campaign, "schedule")
    assert message.startswith("This campaign cannot be sent: the audience 'Nobody' is empty")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


# --- permissions ----------------------------------------------------------------------------


def test_support_views_a_campaign_but_cannot_run_it(setup, support):
    event, mail = setup
    campaign = make_campaign(event, contact_list("Customers", people(2)), mail)

    page = support.get(url(campaign, "change"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="campaign-panel"' in html and "Dry run" in html
    assert "Send now" not in html and "Send test" not in html
    assert support.get(url(campaign, "dry-run")).status_code == 200
    assert support.get(url(campaign, "progress")).status_code == 200
    assert support.get(url(campaign, "report")).status_code == 200
    assert support.get(url(campaign, "test-send")).status_code == 403
    for action in ("schedule", "pause", "resume", "cancel", "unschedule", "test-send"):
        response = support.post(url(campaign, action), {"addresses": "ann@example.com"})
        assert response.status_code == 403, action
    assert support.post(url(campaign, "change"), {"name": "Hacked"}).status_code == 403
    campaign.refresh_from_db()
    assert (campaign.name, campaign.status) == ("Spring", CampaignStatus.DRAFT)
    assert locmem.outbox == []


def its_messages_link(client: Client, campaign: Campaign) -> str:
    """Where the report's "Its messages" link leads this user."""
    report = client.get(url(campaign, "report")).content.decode()
    (href,) = re.findall(r'<a [^>]*href="([^"]+)"[^>]*>Its messages</a>', report)
    return unescape(href)


@pytest.mark.django_db
def test_the_reports_messages_link_opens_a_read_only_masked_list_for_marketing(
    setup, marketing, support, run_worker, django_user_model, committed
):
    """Marketing may not use the message admin: the report links it to the campaign's own
    messages instead, read-only, addresses masked; no parameter widens it to other messages.
    Support keeps the full message admin."""
    event, mail = setup
    campaign = make_campaign(event, contact_list("Customers", people(3)), mail)
    other = make_campaign(
        event,
        contact_list("Others", [{"email": "other@example.org", "name": "O", "data": {}}]),
        mail,
    )
    for each in (campaign, other):
        with committed():
            act(marketing, each, "schedule")
    run_worker()
    with committed():
        (transactional,) = notify(
            event,
            {"email": "secret@example.net"},
            {"headline": "h", "offer": "o"},
            channels=["mail"],
        ).messages
    run_worker()
    Message.objects.filter(campaign=campaign, address="c2@example.com").update(
        status="failed", last_error="SMTP 550: <C2@Example.com> mailbox unknown"
    )

    response = marketing.get(its_messages_link(marketing, campaign))
    assert response.status_code == 200
    assert response.request["PATH_INFO"] == url(campaign, "messages")
    page = text(response)
    rows = [(r.channel, r.language, r.address, r.status, r.error) for r in response.context["rows"]]
    assert rows == [
        ("mail", "en", "c•••@example.com", "sent", ""),
        ("mail", "de", "c•••@example.com", "sent", ""),
        (
            "mail",
            "en",
            "c•••@example.com",
            "failed",
            "SMTP 550: <c•••@example.com> mailbox unknown",
        ),
    ]
    assert "sent (2)" in page and "failed (1)" in page
    html = response.content.decode()
    for secret in ("c0@example.com", "c2@example.com", "other", "secret", "Spring sale for"):
        assert secret not in html, secret
    assert "<form" not in html.split('id="campaign-messages"')[1].split("</table>")[0]
    with committed():
        assert marketing.post(url(campaign, "messages")).status_code == 405

    # Tampering: only the campaign in the path, only its own filters.
    for query, named in (
        (f"campaign__id__exact={other.pk}", "unknown filter(s): campaign__id__exact;"),
        (f"campaign={other.pk}", "unknown filter(s): campaign;"),
        ("campaign__isnull=True", "unknown filter(s): campaign__isnull;"),
        (f"id={transactional.pk}&status=sent", "unknown filter(s): id;"),
        ("status=bogus", "unknown status 'bogus'"),
    ):
        tampered = marketing.get(url(campaign, "messages") + "?" + query)
        assert (tampered.status_code, tampered["Content-Type"]) == (
            400,
            "text/plain; charset=utf-8",
        ), query
        assert named in tampered.content.decode() and "@" not in tampered.content.decode()
    assert (
        marketing.get(url(campaign, "messages") + "?status=failed").context["rows"][0].status
        == "failed"
    )
    assert marketing.get(url(campaign, "messages") + "?channel=sms").context["rows"] == []
    assert marketing.get(f"{CHANGELIST}999999/messages/").status_code == 404
    assert marketing.get("/admin/campaigns/message/").status_code == 403
    assert marketing.get(f"/admin/campaigns/message/{transactional.pk}/change/").status_code == 403

    full = f"/admin/campaigns/message/?campaign__id__exact={campaign.pk}"
    assert its_messages_link(support, campaign) == full
    assert support.get(full).status_code == 200
    nobody = staff_client(django_user_model, "nobody", None)
    assert nobody.get(url(campaign, "messages")).status_code == 403


def test_staff_without_campaign_permissions_see_nothing(setup, django_user_model):
    event, mail = setup
    campaign = make_campaign(event, contact_list("Customers", people(2)), mail)
    nobody = staff_client(django_user_model, "nobody", None)
    assert nobody.get(CHANGELIST).status_code == 403
    for action in ("change", "dry-run", "progress", "report", "report.csv", "test-send"):
        assert nobody.get(url(campaign, action)).status_code == 403, action
    assert nobody.post(url(campaign, "schedule")).status_code == 403
    assert "/campaigns/campaign/" not in nobody.get("/admin/").content.decode()

    outsider = django_user_model.objects.create_user("eve", "eve@x.io", "pw")  # not staff
    client = Client()
    client.force_login(outsider)
    response = client.get(url(campaign, "dry-run"))
    assert response.status_code == 302 and "/admin/login/" in response.url
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_state_changes_answer_405_to_a_get(setup, marketing):
    event, mail = setup
    campaign = make_campaign(event, contact_list("Customers", people(2)), mail)
    for action in ("schedule", "unschedule", "pause", "resume", "cancel"):
        response = marketing.get(url(campaign, action))
        assert response.status_code == 405, action
        assert response["Allow"] == "POST"
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_state_changes_need_the_csrf_token(setup, marketing):
    event, mail = setup
    campaign = make_campaign(event, contact_list("Customers", people(2)), mail)
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketing.user)

    for action in ("schedule", "cancel", "test-send"):
        assert client.post(url(campaign, action)).status_code == 403, action
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT

    page = client.get(url(campaign, "change")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(
        url(campaign, "test-send"), {"csrfmiddlewaretoken": token, "addresses": "ann@example.com"}
    )
    assert response.status_code == 200 and len(locmem.outbox) == 1


def test_a_campaign_under_way_cannot_be_deleted(setup, marketing):
    event, mail = setup
    audience = contact_list("Customers", people(2))
    paused = make_campaign(event, audience, mail)
    done = make_campaign(event, audience, mail)
    Campaign.objects.filter(pk=paused.pk).update(status=CampaignStatus.PAUSED)
    Campaign.objects.filter(pk=done.pk).update(status=CampaignStatus.DONE)
    kept = Message.objects.create(event=event, channel=mail, campaign=done, address="a@x.io")

    assert marketing.get(url(paused, "delete")).status_code == 403
    assert marketing.post(url(paused, "delete"), {"post": "yes"}).status_code == 403
    assert "Delete campaign" not in marketing.get(url(paused, "change")).content.decode()
    response = marketing.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [paused.pk, done.pk], "post": "yes"},
    )
    assert response.status_code == 403
    assert Campaign.objects.count() == 2

    response = marketing.post(url(done, "delete"), {"post": "yes"})
    assert response.status_code == 302
    assert list(Campaign.objects.all()) == [paused]
    kept.refresh_from_db()
    assert kept.campaign_id is None  # the audit record stays


# --- contact import ---------------------------------------------------------------------------


CONTACTS_CSV = (
    "email,name,language,tz,plan\n"
    "Ann@Example.com,Ann,en,Europe/Berlin,gold\n"
    "bob@example.com,Bob,de,,silver\n"
    "chloe@example.com,Chloé,,America/New_York,\n"
)


def upload(client, content: bytes, audience, *, name="contacts.csv", fmt=CSV_FORMAT):
    return client.post(
        IMPORT,
        {
            "import_file": SimpleUploadedFile(name, content),
            "format": fmt,
            "resource": "0",
            "audience": audience.pk if audience else "",
        },
    )


def import_contacts(client, content: bytes, audience, **kwargs):
    """Upload, check the preview wrote nothing, then confirm; returns the final response."""
    before = Contact.objects.count()
    response = upload(client, content, audience, **kwargs)
    assert response.status_code == 200
    confirm = response.context.get("confirm_form")
    result = response.context.get("result")
    assert confirm is not None, (
        response.context["form"].errors,
        [e.error for e in result.base_errors] if result else None,
        [(r.number, r.error_dict) for r in result.invalid_rows] if result else None,
    )
    assert Contact.objects.count() == before  # the preview
    assert confirm.initial["audience"] == audience.pk
    data = {**confirm.initial}
    response = client.post(PROCESS_IMPORT, data, follow=True)
    assert response.redirect_chain == [("/admin/campaigns/contact/", 302)]
    return response


def test_a_csv_is_imported_into_the_chosen_list_and_extra_columns_go_to_data(setup, marketing):
    customers = Audience.objects.create(name="Customers", kind="contacts")
    other = contact_list("Other list", [{"email": "bob@example.com", "name": "Other Bob"}])
    page = marketing.get(IMPORT)
    assert page.status_code == 200
    assert "Customers" in page.content.decode()
    assert 'usable in templates: a "plan" column as {{ recipient.plan }}.' in text(page)
    assert list(page.context["form"].fields["audience"].queryset) == [customers, other]

    response = import_contacts(marketing, CONTACTS_CSV.encode(), customers)
    assert shown(response) == ["Import finished: 3 new, 0 updated, 0 unchanged."]

    contacts = {c.email: c for c in customers.contacts.all()}
    assert set(contacts) == {"ann@example.com", "bob@example.com", "chloe@example.com"}
    ann = contacts["ann@example.com"]
    assert (ann.name, ann.language, ann.tz, ann.data) == (
        "Ann",
        "en",
        "Europe/Berlin",
        {"plan": "gold"},
    )
    assert contacts["bob@example.com"].data == {"plan": "silver"}
    assert contacts["chloe@example.com"].data == {}
    assert other.contacts.get().name == "Other Bob"  # the other list is untouched

    import_contacts(marketing, CONTACTS_CSV.encode(), customers)
    assert customers.contacts.count() == 3

    changed = CONTACTS_CSV.replace("Bob,de,,silver", "Robert,de,,platinum")
    response = import_contacts(marketing, changed.encode(), customers)
    assert shown(response) == ["Import finished: 0 new, 1 updated, 2 unchanged."]
    assert customers.contacts.count() == 3
    bob = customers.contacts.get(email="bob@example.com")
    assert (bob.name, bob.data) == ("Robert", {"plan": "platinum"})


def test_an_xlsx_is_imported_too(setup, marketing):
    customers = Audience.objects.create(name="Customers", kind="contacts")
    book = Workbook()
    sheet = book.active
    sheet.append(["Email", "Name", "Phone", "Timezone", "Plan", "Seats"])
    sheet.append(["dana@example.com", "Dana", "+4915100000042", "Asia/Tokyo", "gold", 12])
    sheet.append([None, "Phone only", "+4915100000043", None, "free", None])
    content = io.BytesIO()
    book.save(content)

    import_contacts(marketing, content.getvalue(), customers, name="contacts.xlsx", fmt=XLSX_FORMAT)

    dana = customers.contacts.get(email="dana@example.com")
    assert (dana.name, dana.phone, dana.tz) == ("Dana", "+4915100000042", "Asia/Tokyo")
    assert dana.data == {"plan": "gold", "seats": "12"}
    phone_only = customers.contacts.get(phone="+4915100000043")
    assert (phone_only.email, phone_only.data) == ("", {"plan": "free"})


def test_a_file_without_an_email_or_phone_column_is_refused(setup, marketing):
    customers = Audience.objects.create(name="Customers", kind="contacts")
    response = upload(marketing, b"name,plan\nAnn,gold\n", customers)
    assert response.status_code == 200
    assert "confirm_form" not in response.context
    assert "the file needs an &#x27;email&#x27; or a &#x27;phone&#x27; column" in (
        response.content.decode()
    )
    assert not Contact.objects.exists()


def test_a_row_with_a_bad_timezone_is_shown_and_nothing_is_imported(setup, marketing):
    customers = Audience.objects.create(name="Customers", kind="contacts")
    content = b"email,tz\nann@example.com,Europe/Berlin\nbob@example.com,Mars/Olympus\n"
    response = upload(marketing, content, customers)
    assert "confirm_form" not in response.context
    (invalid,) = response.context["result"].invalid_rows
    assert invalid.number == 2 and "tz" in invalid.error_dict
    assert not Contact.objects.exists()


def test_importing_into_an_audience_that_is_not_a_contact_list_is_refused(setup, marketing):
    customers = Audience.objects.create(name="Customers", kind="contacts")
    everyone = Audience.objects.create(name="Everyone", kind="all_users")

    response = upload(marketing, CONTACTS_CSV.encode(), everyone)
    assert response.status_code == 200
    assert "audience" in response.context["form"].errors
    assert "confirm_form" not in response.context
    response = upload(marketing, CONTACTS_CSV.encode(), None)
    assert "audience" in response.context["form"].errors

    # A confirm form pointed at another audience after the preview is refused as well.
    preview = upload(marketing, CONTACTS_CSV.encode(), customers)
    data = {**preview.context["confirm_form"].initial, "audience": everyone.pk}
    response = marketing.post(PROCESS_IMPORT, data)
    assert response.status_code == 200
    assert "audience" in response.context["confirm_form"].errors
    assert not Contact.objects.exists()


def test_a_contact_added_by_hand_goes_to_a_contact_list(setup, marketing):
    customers = Audience.objects.create(name="Customers", kind="contacts")
    everyone = Audience.objects.create(name="Everyone", kind="all_users")
    page = marketing.get("/admin/campaigns/contact/add/")
    assert list(page.context["adminform"].form.fields["audience"].queryset) == [customers]
    form = {"email": "ann@example.com", "data": "{}", "audience": everyone.pk}
    response = marketing.post("/admin/campaigns/contact/add/", form)
    assert "audience" in response.context["adminform"].form.errors
    response = marketing.post("/admin/campaigns/contact/add/", {**form, "audience": customers.pk})
    assert response.status_code == 302
    assert customers.contacts.get().email == "ann@example.com"


def test_support_cannot_import_contacts(setup, support):
    customers = Audience.objects.create(name="Customers", kind="contacts")
    assert support.get(IMPORT).status_code == 403
    assert upload(support, CONTACTS_CSV.encode(), customers).status_code == 403
    assert not Contact.objects.exists()


# --- audiences --------------------------------------------------------------------------------


def test_the_audience_list_shows_sizes(setup, marketing, django_user_model):
    contact_list("Customers", people(4))
    Audience.objects.create(name="Empty list", kind="contacts")
    group = Group.objects.create(name="Beta testers")
    for i in range(3):
        user = django_user_model.objects.create_user(f"u{i}", f"u{i}@shop.example")
        if i:
            user.groups.add(group)
    django_user_model.objects.create_user("gone", "gone@shop.example", is_active=False)
    Audience.objects.create(name="Beta", kind="group", group=group)
    Audience.objects.create(name="Everyone", kind="all_users")
    Audience.objects.create(name="Shop", kind="filter", email_domain="shop.example")

    response = marketing.get("/admin/campaigns/audience/")

    assert response.status_code == 200
    html = response.content.decode()
    sizes = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        name = re.search(r"field-name[^>]*>\s*(?:<a[^>]*>)?\s*([^<]+?)\s*<", row)
        size = re.search(r"field-size[^>]*>\s*(\d+)\s*<", row)
        if name and size:
            sizes[name.group(1)] = int(size.group(1))
    # Everyone: the three users plus mia (staff are users too); the inactive one is not.
    assert sizes == {"Beta": 2, "Customers": 4, "Empty list": 0, "Everyone": 4, "Shop": 3}

    customers = Audience.objects.get(name="Customers")
    page = text(marketing.get(f"/admin/campaigns/audience/{customers.pk}/change/"))
    assert "4 contacts" in page
