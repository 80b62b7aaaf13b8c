"""Campaigns: audiences, the dry run against what is sent, local send times, the chunked
fan-out on a real RQ worker, pause / resume / cancel, progress and the report."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.broadcast.audiences import audience_recipients, audience_size
from campaigns.broadcast.control import campaign_cancel, campaign_pause, campaign_resume
from campaigns.broadcast.dry_run import campaign_dry_run
from campaigns.broadcast.fanout import campaign_schedule, campaigns_tick, chunk_fan_out
from campaigns.broadcast.report import campaign_progress, campaign_report, campaign_report_rows
from campaigns.broadcast.testsend import campaign_test_send
from campaigns.exceptions import CampaignError
from campaigns.models import (
    Audience,
    Campaign,
    CampaignChunk,
    CampaignStatus,
    Contact,
    Message,
    OptOut,
    RecipientProfile,
)
from campaigns.outbox.dispatch import leased_batch_size
from campaigns.outbox.queueing import BULK, ready_take
from channels.backends import locmem
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(settings):
    """A marketing event on two channels: 'mail' (email; en and de templates) and 'text'
    (reads ``phone``; en only), chunks of 7 recipients."""
    settings.NOTIFIER = {**settings.NOTIFIER, "CAMPAIGN_CHUNK": 7}
    mail = factories.memory_channel("mail")
    text = factories.ChannelFactory(key="text", config={"address_key": "phone"})
    event = factories.EventFactory(
        key="newsletter",
        marketing=True,
        variables=[{"name": "headline", "label": "Headline", "sample": "News"}],
    )
    body = "{{ headline }} for {{ recipient.name }} on the {{ recipient.plan }} plan"
    for channel, language in ((mail, "en"), (mail, "de"), (text, "en")):
        factories.TemplateFactory(
            event=event,
            channel=channel,
            language=language,
            subject=f"[{language}] {{{{ headline }}}}",
            text_body=body,
        )
    return event, mail, text


def contact_list(name: str, rows: list[dict]) -> Audience:
    audience = Audience.objects.create(name=name, kind="contacts")
    Contact.objects.bulk_create([Contact(audience=audience, **row) for row in rows])
    return audience


def people(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        row = {"email": f"c{i}@example.com", "name": f"C{i}", "data": {"plan": "pro"}}
        if i % 3 == 0:
            row["phone"] = f"+4915100000{i:03d}"
        if i % 4 == 1:
            row["language"] = "de"
        if i % 5 == 2:
            row["language"] = "fr"  # no fr template: falls back to en
        rows.append(row)
    return rows


def make_campaign(event, audience, **fields) -> Campaign:
    fields.setdefault("context", {"headline": "Spring sale"})
    return Campaign.objects.create(name="Spring", event=event, audience=audience, **fields)


def test_dry_run_writes_nothing_and_its_counts_are_what_sending_does(setup, run_worker, committed):
    event, mail, _ = setup
    audience = contact_list("List", people(40))
    extra = Contact.objects.create(audience=audience, phone="+491510000999", name="P")
    OptOut.objects.create(address="c5@example.com", channel=mail)  # opted out of mail
    Contact.objects.filter(email="c7@example.com").update(email="")  # no email: no mail
    campaign = make_campaign(event, audience)

    dry = campaign_dry_run(campaign)
    assert Message.objects.count() == 0 and CampaignChunk.objects.count() == 0
    assert dry.recipients == 41 and not dry.problems
    assert dry.per_channel() == {"mail": 38, "text": 15}  # 40 - opted out - no email
    assert dry.planned[("mail", "de")] == 7  # 8 German contacts, c5 opted out
    assert dry.skipped[("mail", "opted out")] == 1
    assert dry.skipped[("mail", "no address")] == 2  # c7 and the phone-only contact
    assert extra.pk and dry.skipped[("text", "no address")] == 41 - 15

    with committed():
        campaign_schedule(campaign)
    assert campaign.status == CampaignStatus.RUNNING
    assert CampaignChunk.objects.filter(campaign=campaign).count() == 6  # 41 / 7
    run_worker()

    sent = Counter(
        Message.objects.filter(campaign=campaign, status="sent").values_list(
            "channel__key", "language"
        )
    )
    assert sent == dry.planned
    report = campaign_report(campaign)
    skipped_by_reason = Counter()
    for (_, reason), n in dry.skipped.items():
        skipped_by_reason[reason] += n
    assert report.skipped == dict(skipped_by_reason)
    # Templates saw the contact's extra column and the campaign's values.
    (de,) = [m for m in locmem.outbox if m.address == "c1@example.com" and m.subject][:1]
    assert de.subject == "[de] Spring sale"
    assert de.text == "Spring sale for C1 on the pro plan"
    campaigns_tick()  # the sweep finishes a campaign with nothing left to do
    campaign.refresh_from_db()
    progress = campaign_progress(campaign)
    assert progress.status == CampaignStatus.DONE and progress.percent == 100
    assert progress.sent == 53 and progress.skipped == sum(dry.skipped.values())


def test_a_recipient_gets_a_campaign_once_per_channel(setup):
    event, mail, _ = setup
    campaign = make_campaign(event, contact_list("L", people(3)))
    Message.objects.create(
        event=event, channel=mail, campaign=campaign, address="x@example.com", status="sent"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(
            event=event, channel=mail, campaign=campaign, address="x@example.com"
        )


def test_the_same_address_in_two_chunks_is_written_once(
    setup, run_worker, django_user_model, committed
):
    event, mail, _ = setup
    users = [django_user_model.objects.create_user(f"u{i}", "same@example.com") for i in range(9)]
    audience = Audience.objects.create(name="All", kind="all_users")
    campaign = make_campaign(event, audience, send_at=None)
    campaign.channels.set([mail])
    dry = campaign_dry_run(campaign)
    assert dry.per_channel() == {"mail": 1}
    assert dry.skipped[("mail", "duplicate address")] == 8
    with committed():
        campaign_schedule(campaign)
    run_worker()
    assert Message.objects.filter(campaign=campaign).count() == 1
    assert len(users) == 9
    # Chunks of 7: the second chunk's first insert met the first chunk's row in the unique
    # index, and its second try skipped the two it holds as duplicates.
    chunks = CampaignChunk.objects.filter(campaign=campaign).order_by("number")
    assert [(c.status, c.written, c.skipped) for c in chunks] == [
        ("done", 1, {"duplicate address": 6}),
        ("done", 0, {"duplicate address": 2}),
    ]


def test_audiences_all_users_group_and_saved_filter(django_user_model):
    old = django_user_model.objects.create_user("old", "old@example.com")
    new = django_user_model.objects.create_user("new", "new@shop.example")
    django_user_model.objects.create_user("gone", "gone@example.com", is_active=False)
    django_user_model.objects.filter(pk=old.pk).update(
        date_joined=timezone.now() - dt.timedelta(days=400)
    )
    RecipientProfile.objects.create(user=new, language="de")
    group = Group.objects.create(name="Beta testers")
    old.groups.add(group)

    everyone = Audience.objects.create(name="Everyone", kind="all_users")
    beta = Audience.objects.create(name="Beta", kind="group", group=group)
    recent = Audience(
        name="Recent",
        kind="filter",
        joined_after=(timezone.now() - dt.timedelta(days=30)).date(),
    )
    recent.full_clean()
    recent.save()
    german = Audience.objects.create(name="German", kind="filter", language="de")
    shop = Audience.objects.create(name="Shop", kind="filter", email_domain="shop.example")

    assert audience_size(everyone) == 2  # the inactive user is not in it
    assert audience_recipients(beta, 0, 10**9) == [{"user_id": old.pk}]
    assert audience_recipients(recent, 0, 10**9) == [{"user_id": new.pk}]
    assert audience_size(german) == 1 and audience_size(shop) == 1

    empty = Audience(name="Bad", kind="filter")
    with pytest.raises(Exception, match="at least one condition"):
        empty.full_clean()


def test_contact_columns_reach_the_recipient_but_cannot_override_addresses(setup):
    audience = contact_list(
        "L", [{"email": "a@example.com", "data": {"plan": "gold", "email": "evil@example.com"}}]
    )
    (person,) = audience_recipients(audience, 0, 10**9)
    assert person["email"] == "a@example.com" and person["plan"] == "gold"


def test_local_time_delivers_at_nine_in_each_recipients_timezone(setup, committed):
    event, mail, _ = setup
    audience = contact_list(
        "World",
        [
            {"email": "tokyo@example.com", "tz": "Asia/Tokyo"},
            {"email": "ny@example.com", "tz": "America/New_York"},
        ],
    )
    day = timezone.now().date() + dt.timedelta(days=2)
    send_at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
    campaign = make_campaign(event, audience, send_at=send_at, local_time=dt.time(9))
    campaign.channels.set([mail])

    dry = campaign_dry_run(campaign)
    count, earliest, latest = dry.scheduled["mail"]
    tokyo = dt.datetime.combine(day, dt.time(9), tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
    new_york = dt.datetime.combine(day, dt.time(9), tzinfo=zoneinfo.ZoneInfo("America/New_York"))
    assert (count, earliest, latest) == (2, tokyo, new_york)

    with committed():  # two days ahead: the sweep begins the fan-out
        campaign_schedule(campaign)
    assert campaign.status == CampaignStatus.SCHEDULED
    assert not CampaignChunk.objects.exists()
    # The fan-out begins when the first timezone (UTC+14) reaches 09:00: the day before,
    # 19:00 UTC.
    first_nine = dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC) - dt.timedelta(hours=14)
    assert campaigns_tick(now=first_nine - dt.timedelta(minutes=1))["launched"] == 0
    assert campaigns_tick(now=first_nine)["launched"] == 1
    chunk_fan_out(CampaignChunk.objects.get().pk)
    due = dict(Message.objects.values_list("address", "next_attempt_at"))
    assert due == {"tokyo@example.com": tokyo, "ny@example.com": new_york}
    assert set(Message.objects.values_list("status", flat=True)) == {"scheduled"}


def test_a_campaign_that_cannot_be_sent_says_why(setup, committed):
    event, _, _ = setup
    campaign = make_campaign(event, Audience.objects.create(name="Empty", kind="contacts"))
    campaign.context = {}
    campaign.save()
    with pytest.raises(CampaignError) as error, committed():
        campaign_schedule(campaign)
    assert "headline" in str(error.value) and "'Empty' is empty" in str(error.value)
    assert Campaign.objects.get().status == CampaignStatus.DRAFT


def _fan_out(campaign) -> None:
    """Run the campaign's chunk jobs here (their dispatch jobs stay in Redis)."""
    for chunk in CampaignChunk.objects.filter(campaign=campaign):
        chunk_fan_out(chunk.pk)


def scheduled_of_20(setup, committed) -> tuple[Campaign, CampaignChunk]:
    """A campaign of 20 contacts on 'mail' (chunks of 7), scheduled, and its first chunk."""
    event, mail, _ = setup
    campaign = make_campaign(event, contact_list("L", people(20)))
    campaign.channels.set([mail])
    with committed():
        campaign_schedule(campaign)
    return campaign, CampaignChunk.objects.filter(campaign=campaign).order_by("number").first()


def test_a_chunk_job_sends_its_own_messages_without_claiming_them(setup, committed):
    """The chunk job writes the messages due now straight into ``sending`` under its lease
    and, once they commit, sends them itself: one attempt each, nothing left to a drain."""
    campaign, first = scheduled_of_20(setup, committed)
    with committed():
        report = chunk_fan_out(first.pk)
        assert report["sending"] == 7
        written = Message.objects.filter(campaign=campaign)
        assert set(written.values_list("status", "attempts")) == {("sending", 1)}
        assert locmem.outbox == []  # not before the rows commit
    assert len(locmem.outbox) == 7
    assert set(written.values_list("status", "attempts")) == {("sent", 1)}
    assert sorted(m.address for m in locmem.outbox) == sorted(
        written.values_list("address", flat=True)
    )
    assert ready_take(BULK, 100) == []


def test_a_chunk_job_on_a_fast_channel_sends_in_larger_batches(setup, committed, settings, caplog):
    """After a first batch of ``BATCH_SIZE``, a job sending its own rows takes as many as the
    rest of its budget allows at that pace, up to five times ``BATCH_SIZE``."""
    settings.NOTIFIER = {**settings.NOTIFIER, "BATCH_SIZE": 2, "DRAIN_BUDGET": 60}
    _, first = scheduled_of_20(setup, committed)
    with caplog.at_level("INFO", logger="notifier.dispatch"), committed():
        chunk_fan_out(first.pk)
    batches = [r.getMessage() for r in caplog.records if "dispatch batch" in r.getMessage()]
    assert [line.split(": ")[1].split(",")[0] for line in batches] == [
        "2 claimed",
        "5 claimed",
    ]
    assert len(locmem.outbox) == 7


@pytest.mark.parametrize(
    ("elapsed", "size"),
    [
        (0.04, 1000),  # 200 in 40 ms: 2,300 would fit in the budget's rest; five batches' worth
        (0.2, 300),  # 200 in 200 ms: 300 more fit in the 300 ms left
        (0.45, 200),  # slow: never fewer than BATCH_SIZE
    ],
)
def test_the_next_batch_fits_the_rest_of_the_budget(settings, elapsed, size):
    settings.NOTIFIER = {**settings.NOTIFIER, "BATCH_SIZE": 200}
    assert leased_batch_size(200, elapsed, 0.5) == size


def test_a_chunk_job_out_of_time_leaves_the_rest_to_the_bulk_lane(setup, committed, settings):
    """After ``DRAIN_BUDGET`` seconds (here: after its first batch) the chunk job hands what
    it has not sent to the bulk lane's drain job, unattempted."""
    settings.NOTIFIER = {**settings.NOTIFIER, "BATCH_SIZE": 3, "DRAIN_BUDGET": 0}
    _, first = scheduled_of_20(setup, committed)
    with committed():
        chunk_fan_out(first.pk)
    statuses = Counter(Message.objects.values_list("status", "attempts"))
    assert statuses == {("sent", 1): 3, ("queued", 0): 4}
    queued = Message.objects.filter(status="queued").values_list("pk", flat=True)
    assert sorted(ready_take(BULK, 100)) == sorted(queued)


def _holding_setup(setup, committed, settings):
    """A campaign of 20 (chunks of 7) whose first chunk job sent 3 messages and left 4 to the
    bulk lane (``BATCH_SIZE`` 3, no time budget), with 2 chunks still pending."""
    settings.NOTIFIER = {**settings.NOTIFIER, "BATCH_SIZE": 3, "DRAIN_BUDGET": 0}
    campaign, first = scheduled_of_20(setup, committed)
    with committed():
        chunk_fan_out(first.pk)
    assert len(locmem.outbox) == 3
    return campaign


def test_pause_holds_messages_and_chunks_resume_sends_everything(
    setup, run_worker, committed, settings
):
    campaign = _holding_setup(setup, committed, settings)

    assert campaign_pause(campaign) == 4
    run_worker()  # the chunk jobs see the pause; the drain finds nothing claimable
    assert len(locmem.outbox) == 3
    assert Counter(Message.objects.values_list("status", flat=True)) == {"sent": 3, "paused": 4}
    assert CampaignChunk.objects.filter(status="pending").count() == 2
    with pytest.raises(CampaignError, match="Only a running campaign"):
        campaign_pause(campaign)

    with committed():
        assert campaign_resume(campaign) == 4
    run_worker()
    assert len(locmem.outbox) == 20
    assert len({m.address for m in locmem.outbox}) == 20
    campaigns_tick()
    campaign.refresh_from_db()
    assert campaign_progress(campaign).status == CampaignStatus.DONE


def test_a_pause_between_a_chunks_commit_and_its_send_holds_the_chunk(setup, committed):
    """The pause comes after the chunk job committed its rows (in ``sending``: the pause
    cannot hold them) and before it sends them: the job asks the campaign's state before
    each message, and holds them itself."""
    event, mail, _ = setup
    campaign = make_campaign(event, contact_list("L", people(5)))
    campaign.channels.set([mail])
    with committed():
        campaign_schedule(campaign)
    with committed():
        _fan_out(campaign)
        assert campaign_pause(campaign) == 0
    assert locmem.outbox == []
    assert set(Message.objects.values_list("status", "attempts")) == {("paused", 0)}


def test_cancel_stops_pending_messages_and_chunks_and_keeps_what_was_sent(
    setup, run_worker, committed, settings
):
    campaign = _holding_setup(setup, committed, settings)

    result = campaign_cancel(campaign)
    assert (result.stopped, result.sending) == (4, 0)
    run_worker()
    assert len(locmem.outbox) == 3
    assert Counter(Message.objects.values_list("status", flat=True)) == {"sent": 3, "cancelled": 4}
    assert set(CampaignChunk.objects.values_list("status", flat=True)) == {"done", "cancelled"}
    progress = campaign_progress(campaign)
    assert progress.finished and progress.percent == 100
    with pytest.raises(CampaignError, match="nothing to cancel"):
        campaign_cancel(campaign)


def test_a_batch_claimed_before_the_cancel_does_not_send(setup, committed, settings):
    """A worker that claimed a batch and sends it after the cancel stops before each
    message: the dispatch asks the campaign's state as it goes."""
    from campaigns.outbox.dispatch import message_dispatch

    campaign = _holding_setup(setup, committed, settings)
    ids = list(Message.objects.filter(status="queued").values_list("pk", flat=True))
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.CANCELLED)
    summary = message_dispatch(message_ids=ids)
    assert summary.as_dict() == {"claimed": 4, "cancelled": 4}
    assert len(locmem.outbox) == 3
    cancelled = Message.objects.filter(status="cancelled")
    assert set(cancelled.values_list("status_reason", "attempts")) == {("campaign cancelled", 0)}


def test_report_rows_cover_every_message(setup, run_worker, committed):
    event, _, _ = setup
    campaign = make_campaign(event, contact_list("L", people(10)))
    with committed():
        campaign_schedule(campaign)
    run_worker()
    rows = list(campaign_report_rows(campaign))
    assert rows[0][:3] == ["message", "channel", "language"]
    assert len(rows) - 1 == Message.objects.filter(campaign=campaign).count() == 14
    assert {row[5] for row in rows[1:]} == {"sent"}
    report = campaign_report(campaign)
    assert report.totals[("mail", "de")] == {"sent": 3}
    assert report.totals[("text", "en")] == {"sent": 4}


def test_test_send_goes_to_each_channel_that_takes_the_address(setup):
    event, _, _ = setup
    campaign = make_campaign(event, contact_list("L", people(1)))
    rows = campaign_test_send(campaign, ["ann@example.com"])
    assert {(channel, address) for channel, address, _ in rows} == {
        ("mail", "ann@example.com"),
        ("text", "ann@example.com"),  # a memory channel takes any address
    }
    assert all(result.ok for _, _, result in rows)
    assert locmem.outbox[0].subject == "[Test] [en] Spring sale"
    assert Message.objects.count() == 0


def test_contacts_keep_their_extra_columns_through_export_and_import():
    import tablib

    from campaigns.admin.resources import ContactResource

    source = contact_list(
        "Source", [{"email": "a@example.com", "name": "A", "data": {"plan": "gold"}}]
    )
    exported = ContactResource(audience=source).export(Contact.objects.filter(audience=source))
    target = Audience.objects.create(name="Target", kind="contacts")
    dataset = tablib.Dataset().load(exported.csv, format="csv")
    dataset.append_col(["EU"], header="region")  # a new column next to the exported ones
    result = ContactResource(audience=target).import_data(dataset, raise_errors=True)
    assert not result.has_errors()
    contact = Contact.objects.get(audience=target)
    assert (contact.email, contact.name, contact.data) == (
        "a@example.com",
        "A",
        {"plan": "gold", "region": "EU"},
    )


def test_a_closed_window_holds_messages_and_the_dry_run_says_until_when(setup, committed):
    from campaigns.models import AvailabilityWindow

    event, mail, _ = setup
    opens = (timezone.now() + dt.timedelta(hours=2)).replace(second=0, microsecond=0)
    AvailabilityWindow.objects.create(
        channel=mail,
        start_time=opens.time(),
        end_time=(opens + dt.timedelta(hours=1)).time(),
    )
    rows = [{"email": f"w{i}@example.com", "tz": "UTC"} for i in range(3)]
    campaign = make_campaign(event, contact_list("Windowed", rows))
    campaign.channels.set([mail])

    dry = campaign_dry_run(campaign)
    assert dry.scheduled == {"mail": [3, opens, opens]}

    with committed():
        campaign_schedule(campaign)
    _fan_out(campaign)
    assert set(Message.objects.values_list("status", "next_attempt_at")) == {("scheduled", opens)}


def test_a_channel_turned_off_mid_campaign_pauses_it_with_the_reason(setup, run_worker, committed):
    """A chunk that notify() refuses writes nothing: the campaign pauses and says why, and
    resuming after the fix sends the rest, each recipient once."""
    _, mail, _ = setup
    campaign, first = scheduled_of_20(setup, committed)
    with committed():
        chunk_fan_out(first.pk)
    mail.is_active = False
    mail.save()

    run_worker()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    assert "paused by the site" in campaign.status_reason and "mail" in campaign.status_reason
    assert Message.objects.filter(campaign=campaign).count() == 7  # the refused chunks: none
    assert CampaignChunk.objects.filter(status="pending").count() == 2

    mail.is_active = True
    mail.save()
    with committed():
        campaign_resume(campaign)
    run_worker()
    campaigns_tick()
    campaign.refresh_from_db()
    assert campaign_progress(campaign).status == CampaignStatus.DONE
    campaign.refresh_from_db()
    assert campaign.status_reason == ""
    assert len(locmem.outbox) == 20
    assert len({m.address for m in locmem.outbox}) == 20


def test_a_duplicate_written_by_copy_is_an_integrity_error(setup):
    """The fan-out writes with COPY; a second row for the same campaign, channel and address
    must raise Django's IntegrityError, which the chunk job retries on."""
    from campaigns.outbox.bulk import rows_insert

    event, mail, _ = setup
    campaign = make_campaign(event, contact_list("L", people(1)))

    def row():
        return Message(event=event, channel=mail, campaign=campaign, address="x@example.com")

    rows_insert(Message, [row()])
    with pytest.raises(IntegrityError), transaction.atomic():
        rows_insert(Message, [row()])
    assert Message.objects.count() == 1
