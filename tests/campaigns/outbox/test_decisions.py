"""The decision trail: notify() and a campaign's chunks record why they wrote no message for
someone (one COPY per call with skips, none without), and old decisions are purged."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.api import notify
from campaigns.broadcast.fanout import chunk_fan_out
from campaigns.models import Audience, Campaign, CampaignChunk, Contact, Decision, OptOut
from campaigns.outbox.catalog import catalog_settled
from campaigns.outbox.decisions import decisions_purge
from tests import factories

pytestmark = pytest.mark.django_db

CONTEXT = {"order_id": "A-1"}


@pytest.fixture
def setup():
    mail = factories.memory_channel("mail")
    text = factories.ChannelFactory(key="text", config={"address_key": "phone"})
    template = factories.TemplateFactory(channel=mail, event__key="order-shipped")
    factories.TemplateFactory(channel=text, event=template.event)
    return template.event, mail, text


def test_notify_records_why_each_recipient_got_nothing_on_a_channel(setup, django_user_model):
    event, mail, _ = setup
    alice = django_user_model.objects.create_user("alice", "Alice@Example.com")
    OptOut.objects.create(user=alice, channel=mail)
    result = notify("order-shipped", [alice, {"email": "bob@example.com"}], CONTEXT)
    line = test_notify_records_why_each_recipient_got_nothing_on_a_channel.__code__
    assert [m.address for m in result.messages] == ["bob@example.com"]
    rows = {
        (d.channel, d.reason, d.user_id, d.address) for d in Decision.objects.filter(event=event)
    }
    assert rows == {
        ("text", "no address", alice.pk, "alice@example.com"),
        ("mail", "opted out", alice.pk, "alice@example.com"),
        ("text", "no address", None, "bob@example.com"),
    }
    (call,) = set(Decision.objects.values_list("call", flat=True))
    module, function, number = call.split(":")
    assert (module, function) == (__name__, line.co_name)  # which call: this test's
    assert line.co_firstlineno < int(number) < line.co_firstlineno + 10


def test_recording_costs_one_statement_and_nothing_without_skips(setup):
    """The same call with and without a skip: the skip costs one statement into the decisions
    (an INSERT for a few rows), in one transaction with the messages (its savepoint and release
    in a test); test_notify pins the whole call's count."""
    reached = {"email": "a@x.io", "phone": "+4915100000001"}
    catalog_settled()
    notify("order-shipped", {"email": "w@x.io", "phone": "+4915100000009"}, CONTEXT)  # warm
    with CaptureQueriesContext(connection) as without:
        result = notify("order-shipped", reached, CONTEXT)
    assert len(result.messages) == 2 and not result.skipped
    assert Decision.objects.count() == 0
    with CaptureQueriesContext(connection) as with_skip:
        result = notify("order-shipped", {"email": "b@x.io"}, CONTEXT)
    assert [s.reason for s in result.skipped] == ["no address"]
    assert len(with_skip) == len(without) + 3
    extra = [q["sql"] for q in with_skip if "campaigns_decision" in q["sql"]]
    assert len(extra) == 1 and extra[0].startswith("INSERT")
    assert sum(q["sql"].startswith(("SAVEPOINT", "RELEASE")) for q in with_skip) == 2
    assert Decision.objects.count() == 1


def test_a_duplicate_trigger_is_recorded(setup):
    event, _, _ = setup
    event.trigger = "send_once"
    event.save(update_fields=["trigger"])
    notify("order-shipped", {"email": "a@x.io"}, CONTEXT, channels=["mail"])
    notify("order-shipped", {"email": "a@x.io"}, CONTEXT, channels=["mail"])
    assert list(Decision.objects.values_list("channel", "reason", "address")) == [
        ("mail", "duplicate", "a@x.io")
    ]


def test_a_refused_call_records_nothing(setup):
    with pytest.raises(Exception, match="missing"):
        notify("order-shipped", {"email": "a@x.io"}, {})
    assert not Decision.objects.exists()


def test_a_campaign_chunk_records_its_skips_with_the_campaign(setup):
    event, mail, _ = setup
    audience = Audience.objects.create(name="List", kind="contacts")
    Contact.objects.bulk_create(
        [Contact(audience=audience, email=f"c{i}@example.com") for i in range(3)]
    )
    OptOut.objects.create(address="c1@example.com", channel=mail)
    campaign = Campaign.objects.create(
        name="Spring", event=event, audience=audience, context=CONTEXT, status="running"
    )
    chunk = CampaignChunk.objects.create(
        campaign=campaign, number=0, first_id=0, last_id=10**9, size=3
    )
    chunk_fan_out(chunk.pk)
    decisions = Decision.objects.filter(campaign=campaign)
    assert sorted(decisions.values_list("channel", "reason", "address")) == [
        ("mail", "opted out", "c1@example.com"),
        *[("text", "no address", f"c{i}@example.com") for i in range(3)],
    ]
    assert set(decisions.values_list("call", flat=True)) == {f"campaign {campaign.pk}: Spring"}


def test_decisions_are_purged_after_the_retention_period_in_batches(setup, settings):
    event, _, _ = setup
    settings.NOTIFIER = {**settings.NOTIFIER, "DECISION_RETENTION_DAYS": 7}
    now = timezone.now()
    Decision.objects.bulk_create(
        Decision(
            created_at=now - dt.timedelta(days=days),
            event=event,
            channel="mail",
            reason="opted out",
            address=f"p{days}@example.com",
        )
        for days in range(12)
    )
    assert decisions_purge(now=now, batch=2) == 4  # 8, 9, 10 and 11 days old
    assert sorted(Decision.objects.values_list("address", flat=True)) == sorted(
        f"p{days}@example.com" for days in range(8)
    )


def test_a_campaigns_report_links_to_who_was_skipped(setup, client, django_user_model):
    event, _, _ = setup
    audience = Audience.objects.create(name="List", kind="contacts")
    Contact.objects.create(audience=audience, email="c0@example.com")
    campaign = Campaign.objects.create(
        name="Spring", event=event, audience=audience, context=CONTEXT, status="running"
    )
    chunk = CampaignChunk.objects.create(
        campaign=campaign, number=0, first_id=0, last_id=10**9, size=1
    )
    chunk_fan_out(chunk.pk)
    support = django_user_model.objects.create_user("sue", "sue@x.io", "pw", is_staff=True)
    support.groups.add(Group.objects.get(name="Support"))
    client.force_login(support)
    html = client.get(f"/admin/campaigns/campaign/{campaign.pk}/report/").content.decode()
    link = f"/admin/campaigns/decision/?campaign__id__exact={campaign.pk}"
    assert f'href="{link}"' in html
    listing = client.get(link).content.decode()
    assert "c0@example.com" in listing and "no address" in listing
    assert (
        client.post(f"/admin/campaigns/decision/{Decision.objects.get().pk}/delete/").status_code
        == 403
    )
