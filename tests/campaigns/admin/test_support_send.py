"""The support desk's "Send a message": from a person's timeline, Support writes a text, sees
what will go out, confirms, and the message goes through the outbox into the timeline.
Marketing may not; the form is CSRF-protected; what was typed is never run as code."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from campaigns.models import Decision, Message, OptOut
from campaigns.models.events import ADHOC_EVENT
from tests import factories

pytestmark = pytest.mark.django_db

TEXT = "Hi Alice,\n{{ 7|add:1 }} <script>alert(1)</script> is on its way."


def staff(django_user_model, role: str, **client_options) -> Client:
    user = django_user_model.objects.create_user(role.lower(), f"{role}@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client(**client_options)
    client.force_login(user)
    return client


@pytest.fixture
def alice(django_user_model, email_channel):
    return django_user_model.objects.create_user(
        "alice", "alice@example.com", first_name="Alice", last_name="Archer"
    )


def send_url(alice) -> str:
    return f"/admin/campaigns/message/people/user/{alice.pk}/send/"


def test_support_writes_confirms_and_the_message_is_on_the_timeline(
    alice, django_user_model, smtp, run_worker, committed
):
    support = staff(django_user_model, "Support")
    timeline = f"/admin/campaigns/message/people/user/{alice.pk}/"
    assert f'href="{send_url(alice)}"' in support.get(timeline).content.decode()
    form = support.get(send_url(alice))
    assert form.status_code == 200 and 'name="csrfmiddlewaretoken"' in form.content.decode()
    data = {"channel": "email", "subject": "Your parcel", "text": TEXT}

    review = support.post(send_url(alice), data)
    html = review.content.decode()
    assert "Send this to Alice Archer on Email?" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert not Message.objects.exists()  # asked first

    with committed():
        done = support.post(send_url(alice), {**data, "confirm": "yes"})
    assert done.status_code == 302 and done["Location"] == timeline
    message = Message.objects.get()
    assert (message.event.key, message.user_id, message.text) == (ADHOC_EVENT, alice.pk, TEXT)
    assert message.trigger_user.username == "support"
    run_worker()
    (received,) = smtp.messages
    assert received.get_content().replace("\r\n", "\n").strip() == TEXT  # CRLF on the wire
    page = support.get(timeline).content.decode()
    assert "The message to Alice Archer is on its way." in page
    assert 'data-status="sent" data-event="adhoc"' in page and "“Your parcel”" in page


def test_an_opted_out_person_gets_nothing_and_support_is_told_why(alice, django_user_model):
    OptOut.objects.create(user=alice)
    support = staff(django_user_model, "Support")
    data = {"channel": "email", "subject": "Hi", "text": "Hello", "confirm": "yes"}
    response = support.post(send_url(alice), data, follow=True)
    assert "Nothing was sent to Alice Archer: opted out." in response.content.decode()
    assert not Message.objects.exists()
    assert Decision.objects.get().reason == "opted out"


def test_an_empty_text_or_unknown_channel_is_named(alice, django_user_model):
    support = staff(django_user_model, "Support")
    html = support.post(send_url(alice), {"channel": "email", "text": "  "}).content.decode()
    assert 'data-error="text">Write the message.' in html
    html = support.post(send_url(alice), {"channel": "fax", "text": "Hi"}).content.decode()
    assert 'data-error="channel">' in html and "fax is not one of the available" in html
    assert not Message.objects.exists()


def test_a_bare_address_gets_it_on_the_channel_it_names(django_user_model, email_channel):
    factories.sms_channel()
    support = staff(django_user_model, "Support")
    url = "/admin/campaigns/message/people/address/zoe@example.com/send/"
    data = {"channel": "email", "subject": "Hi", "text": "Hello", "confirm": "yes"}
    assert support.post(url, data).status_code == 302
    assert Message.objects.get().address == "zoe@example.com"


def test_marketing_may_not_send_and_the_form_needs_csrf(alice, django_user_model):
    marketing = staff(django_user_model, "Marketing")
    assert marketing.get(send_url(alice)).status_code == 403
    data = {"channel": "email", "text": "Hello", "confirm": "yes"}
    assert marketing.post(send_url(alice), data).status_code == 403
    support = staff(django_user_model, "Support", enforce_csrf_checks=True)
    assert support.post(send_url(alice), data).status_code == 403  # no token
    assert not Message.objects.exists()
