"""The support desk: find a person by name, username, email or phone; their timeline (every
message on every channel with its state, attempts, provider feedback, and the decisions that
stopped one); the message page with the essentials on top; Send again and Cancel as
confirmed buttons. What Support's browser gets: the HTML and the status codes."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from campaigns.api import notify
from campaigns.models import Audience, ChannelAddress, Contact, Message, OptOut
from campaigns.outbox.sweep import drain
from campaigns.tracking.delivery import delivery_events_apply
from channels.models import ChannelConfig
from channels.webhooks.base import DeliveryEvent
from tests import factories

pytestmark = pytest.mark.django_db

PHONE = "+4915112345678"


def staff(django_user_model, role: str) -> Client:
    user = django_user_model.objects.create_user(role.lower(), f"{role}@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_story(django_user_model, email_channel, smtp):
    """Alice got an in-app welcome, an order email that failed (the server refused it), and
    no SMS (she opted out of SMS): the story support is asked about. Bob got mail too."""
    ChannelConfig.objects.filter(key="inbox").update(is_active=True)
    inbox = ChannelConfig.objects.get(key="inbox")
    sms = factories.sms_channel()
    welcome = factories.EventFactory(key="welcome", name="Welcome", variables=[])
    order = factories.EventFactory(key="order-shipped", name="Order shipped")
    factories.TemplateFactory(event=welcome, channel=inbox, subject="Welcome aboard")
    for channel in (email_channel, sms):
        factories.TemplateFactory(event=order, channel=channel, html_body="<p>{{ order_id }}</p>")
    alice = django_user_model.objects.create_user(
        "alice", "alice@example.com", first_name="Alice", last_name="Archer"
    )
    bob = django_user_model.objects.create_user("bob", "bob@example.com", first_name="Bob")
    ChannelAddress.objects.create(user=alice, kind="phone", address=PHONE)
    OptOut.objects.create(user=alice, kind="sms", source="preferences", created_by=alice)
    notify("welcome", alice, {}, channels=["inbox"])
    smtp.always = "550 5.1.1 mailbox unavailable"
    notify("order-shipped", alice, {"order_id": "A-1"}, channels=["email", "sms"])
    drain()
    smtp.always = None
    notify("order-shipped", bob, {"order_id": "B-1"}, channels=["email"])
    drain()
    return {"alice": alice, "bob": bob, "order": order}


def test_support_finds_a_person_by_name_username_email_or_phone(alice_story, django_user_model):
    client = staff(django_user_model, "Support")
    alice = alice_story["alice"]
    audience = Audience.objects.create(name="Newsletter", kind="contacts")
    Contact.objects.create(audience=audience, name="Alice Contact", email="ac@example.com")
    for query in ("alice", "Alice Archer", "archer", "ALICE@example.com", "+49 151 1234 5678"):
        html = client.get("/admin/campaigns/message/people/", {"q": query}).content.decode()
        assert f'/admin/campaigns/message/people/user/{alice.pk}/"' in html, query
        assert f"/people/user/{alice_story['bob'].pk}/" not in html
    html = client.get("/admin/campaigns/message/people/", {"q": "alice"}).content.decode()
    assert "Alice Contact" in html and "contact in Newsletter" in html
    html = client.get("/admin/campaigns/message/people/", {"q": "nobody@x.io"}).content.decode()
    assert "/people/address/nobody@x.io/" in html  # an address, even with no user


def test_the_timeline_shows_every_channel_and_why_nothing_went_out(alice_story, django_user_model):
    client = staff(django_user_model, "Support")
    alice = alice_story["alice"]
    response = client.get(f"/admin/campaigns/message/people/user/{alice.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    rows = re.findall(r'<tr [^>]*data-kind="(\w+)"[^>]*data-(?:status|reason)="([^"]+)"', html)
    # newest first: the order email and its SMS skip (one call), then the in-app welcome
    assert sorted(rows[:2]) == [("decision", "opted out"), ("message", "failed")]
    assert rows[2:] == [("message", "sent")]
    assert "550 5.1.1 mailbox unavailable" in html  # the failure's reason
    assert "Welcome aboard" in html  # the in-app message, whose address is her user id
    assert "tests.campaigns.admin.test_support:alice_story" in html  # which call skipped
    assert "Preference centre" in html and "by SMS" in html  # her opt-out, and how it came
    assert "B-1" not in html and "bob@example.com" not in html
    assert 'data-action="resend"' in html  # the failed one can be sent again from its row


def test_provider_feedback_shows_on_the_timeline(alice_story, django_user_model):
    client = staff(django_user_model, "Support")
    bob = alice_story["bob"]
    message = Message.objects.get(user=bob)
    applied = delivery_events_apply(
        [DeliveryEvent(channel_key="", provider_id=message.provider_id, status="bounced")]
    )
    assert applied.recorded == 1
    html = client.get(f"/admin/campaigns/message/people/user/{bob.pk}/").content.decode()
    (row,) = re.findall(r'<tr [^>]*data-kind="message".*?</tr>', html, re.S)
    assert 'data-status="sent"' in row and re.search(r">\s*bounced\s*<", row)


def test_the_message_page_puts_the_essentials_on_top_and_shows_attempts_to_support(
    alice_story, django_user_model
):
    client = staff(django_user_model, "Support")
    failed = Message.objects.get(user=alice_story["alice"], channel__key="email")
    html = client.get(f"/admin/campaigns/message/{failed.pk}/change/").content.decode()
    top = html.index('id="message-status"')
    assert top < html.index("Technical details") < html.index("Dedupe key")
    assert html.index('data-status="failed"') < html.index("Technical details")
    assert 'id="message-last-error"' in html and "550 5.1.1 mailbox unavailable" in html
    assert re.search(r'<table[^>]*id="message-attempts"', html)  # Support sees attempts
    assert html.count("mailbox unavailable") >= 2  # the last error, and the attempt's
    assert "<details>" in html  # the technical details folded away
    assert 'data-action="resend"' in html and 'data-action="cancel"' not in html


def test_content_as_sent_is_escaped_and_html_is_sandboxed(email_channel, django_user_model):
    event = factories.EventFactory(key="hello", variables=[{"name": "name", "sample": "x"}])
    factories.TemplateFactory(
        event=event,
        channel=email_channel,
        subject="Hi {{ name }}",
        text_body="Hi {{ name }}",
        html_body="<p>Hi {{ name }}</p>",
    )
    notify("hello", {"email": "x@example.com"}, {"name": "<script>alert(1)</script>"})
    drain()
    message = Message.objects.get()
    client = staff(django_user_model, "Support")
    html = client.get(f"/admin/campaigns/message/{message.pk}/change/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.search(r'<iframe[^>]*sandbox=""[^>]*srcdoc="&lt;p&gt;Hi &amp;lt;script', html)


def test_an_authors_quotes_cannot_leave_the_sandboxed_frame(email_channel, django_user_model):
    """The HTML made again from the template is the escaping engine's output, marked safe:
    put in the frame's srcdoc it must still be escaped, or a template's quote would end the
    attribute and its markup run in the support desk's page."""
    event = factories.EventFactory(key="hello", variables=[])
    factories.TemplateFactory(
        event=event,
        channel=email_channel,
        subject="Hi",
        text_body="Hi",
        html_body='<p title="x">Hi</p>"><script>alert(2)</script><img src=x onerror=alert(3)>',
    )
    notify("hello", {"email": "x@example.com"}, {})
    drain()
    message = Message.objects.get()
    assert message.html == ""  # not kept on the row: made again for the page
    client = staff(django_user_model, "Support")
    html = client.get(f"/admin/campaigns/message/{message.pk}/change/").content.decode()
    assert "<script>alert(2)" not in html and "<img src=x" not in html
    frame = re.search(r'<iframe[^>]*sandbox=""[^>]*srcdoc="([^"]*)"></iframe>', html)
    assert frame and "&lt;script&gt;alert(2)" in frame.group(1)


def test_send_again_is_confirmed_in_a_dialog_then_queues_it(alice_story, django_user_model):
    client = staff(django_user_model, "Support")
    failed = Message.objects.get(user=alice_story["alice"], channel__key="email")
    back = f"/admin/campaigns/message/people/user/{alice_story['alice'].pk}/"
    url = f"/admin/campaigns/message/{failed.pk}/resend_row/?next={back}"
    dialog = client.get(url, HTTP_HX_REQUEST="true")
    assert dialog.status_code == 200 and "Send this message again?" in dialog.content.decode()
    failed.refresh_from_db()
    assert failed.status == "failed"  # asking changes nothing
    response = client.post(url, {"_form_submitted": "on"}, HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == back
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("queued", 0)
    # a second confirmation finds nothing to do, and says so
    client.post(url, {"_form_submitted": "on"}, HTTP_HX_REQUEST="true")
    html = client.get(back).content.decode()
    assert "Only a failed, broken or cancelled message can be sent again." in html


def test_cancel_from_the_page_and_who_may(alice_story, django_user_model):
    order = alice_story["order"]
    (message,) = notify("order-shipped", {"email": "c@x.io"}, {"order_id": "C"}).messages
    url = f"/admin/campaigns/message/{message.pk}/cancel_row/"
    marketing = staff(django_user_model, "Marketing")
    assert marketing.post(url, {"_form_submitted": "on"}).status_code == 403
    assert marketing.get("/admin/campaigns/message/people/?q=alice").status_code == 403
    support = staff(django_user_model, "Support")
    response = support.post(url, {"_form_submitted": "on"})  # without htmx: a redirect
    assert response.status_code == 302
    message.refresh_from_db()
    assert (message.status, message.status_reason) == ("cancelled", "cancelled by support")
    assert order.pk


def test_the_message_list_finds_a_persons_in_app_messages_by_their_name(
    alice_story, django_user_model
):
    client = staff(django_user_model, "Support")
    alice = alice_story["alice"]
    html = client.get("/admin/campaigns/message/", {"q": "alice"}).content.decode()
    # her order email (to alice@…) and her in-app welcome, whose address is her user id
    assert html.count('name="_selected_action"') == 2
    html = client.get("/admin/campaigns/message/", {"user": alice.pk}).content.decode()
    assert html.count('name="_selected_action"') == 2  # her welcome and her order email


def test_the_status_polls_while_a_message_is_under_way(alice_story, django_user_model):
    client = staff(django_user_model, "Support")
    (message,) = notify("order-shipped", {"email": "d@x.io"}, {"order_id": "D"}).messages
    html = client.get(f"/admin/campaigns/message/{message.pk}/summary/").content.decode()
    assert 'hx-trigger="every 2s"' in html and 'data-status="queued"' in html
    drain()
    html = client.get(f"/admin/campaigns/message/{message.pk}/summary/").content.decode()
    assert "hx-trigger" not in html.split(">", 1)[0] and 'data-status="sent"' in html


def test_an_operator_turns_an_opt_out_back_on_and_it_stays_on_record(db, django_user_model):
    client = staff(django_user_model, "Support")
    optout = OptOut.objects.create(address="ann@example.com", kind="email", source="link")
    url = f"/admin/campaigns/optout/{optout.pk}/revoke_row/"
    assert "Turn this opt-out back on?" in client.get(url, HTTP_HX_REQUEST="true").content.decode()
    optout.refresh_from_db()
    assert optout.revoked_at is None  # asking changes nothing
    response = client.post(url, {"_form_submitted": "on"}, HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == "/admin/campaigns/optout/"
    optout.refresh_from_db()
    assert optout.revoked_at and optout.revoked_by.username == "support"
    assert optout.revoked_source == "operator"
    assert not OptOut.objects.active().exists()
    # Deleting the record is for superusers (erasure), not Support.
    assert client.post(f"/admin/campaigns/optout/{optout.pk}/delete/").status_code == 403
    response = client.post(
        "/admin/campaigns/optout/add/", {"address": "bob@example.com", "kind": "sms"}
    )
    assert response.status_code == 302
    added = OptOut.objects.get(address="bob@example.com")
    assert (added.source, added.created_by.username, added.kind) == ("operator", "support", "sms")
