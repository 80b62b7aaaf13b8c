"""What a campaign's recipients carry: every audience kind (all active users, a group, a saved
filter, an imported contact list) gives its templates the recipient fields the preview promises
(its sample recipient's: name, email, language, tz), checked on the raw mail a real SMTP
server received from a real RQ worker."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.broadcast.fanout import campaign_schedule
from campaigns.domain.composition import Sources
from campaigns.domain.preview import SAMPLE_RECIPIENT, template_render_preview
from campaigns.models import Audience, Campaign, Contact, Message, RecipientProfile
from tests import factories

pytestmark = pytest.mark.django_db

BODY = {  # short lines: quoted-printable keeps them as they are in the raw mail
    "en": "Hello {{ recipient.name }},\n{{ headline }}\nmail: {{ recipient.email }}\n"
    "language: {{ recipient.language }}\ntz: {{ recipient.tz }}\nplan: {{ recipient.plan }}",
    "de": "Hallo {{ recipient.name }},\n{{ headline }}\nmail: {{ recipient.email }}\n"
    "language: {{ recipient.language }}\ntz: {{ recipient.tz }}\nplan: {{ recipient.plan }}",
}


@pytest.fixture
def newsletter(email_channel):
    event = factories.EventFactory(
        key="newsletter",
        marketing=True,
        variables=[{"name": "headline", "label": "Headline", "sample": "News"}],
    )
    for language, text in BODY.items():
        factories.TemplateFactory(
            event=event,
            channel=email_channel,
            language=language,
            subject="{{ headline }}",
            text_body=text,
        )
    return event


@pytest.fixture
def users(django_user_model):
    """Grace has a full name and no recipient profile (site language and timezone); kurt has
    only a username, and a German profile."""
    grace = django_user_model.objects.create_user(
        "grace", "grace@example.com", first_name="Grace", last_name="Hopper"
    )
    kurt = django_user_model.objects.create_user("kurt", "kurt@example.org")
    RecipientProfile.objects.create(user=kurt, language="de", timezone="Europe/Berlin")
    beta = Group.objects.create(name="Beta")
    grace.groups.add(beta)
    kurt.groups.add(beta)
    return grace, kurt, beta


def audience_of(kind: str, beta: Group) -> Audience:
    if kind == "group":
        return Audience.objects.create(name="Beta testers", kind=kind, group=beta)
    if kind == "filter":
        yesterday = timezone.localdate() - dt.timedelta(days=1)
        return Audience.objects.create(name="New", kind=kind, joined_after=yesterday)
    return Audience.objects.create(name="Everyone", kind=kind)


def received(smtp, address: str) -> bytes:
    """The raw mail the SMTP server received for ``address`` (headers and body)."""
    (raw,) = [r for r in smtp.raw if f"\nTo: {address}\r".encode() in r.split(b"\r\n\r\n")[0]]
    return raw


def send(campaign: Campaign, run_worker, committed) -> None:
    with committed():
        campaign_schedule(campaign)
    run_worker()  # the chunk jobs, then the dispatch jobs they enqueue
    assert set(Message.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        "sent"
    }


@pytest.mark.parametrize("kind", ["all_users", "group", "filter"])
def test_a_user_audience_greets_each_user_by_name_in_the_raw_mail(
    kind, newsletter, users, smtp, run_worker, settings, committed
):
    *_, beta = users
    campaign = Campaign.objects.create(
        name="Spring",
        event=newsletter,
        audience=audience_of(kind, beta),
        context={"headline": "Spring sale"},
    )

    send(campaign, run_worker, committed)

    assert smtp.count == 2
    assert (
        b"\r\n\r\nHello Grace Hopper,\r\nSpring sale\r\nmail: grace@example.com\r\n"
        b"language: en\r\ntz: " + settings.TIME_ZONE.encode() + b"\r\n"
    ) in received(smtp, "grace@example.com")
    assert (
        b"\r\n\r\nHallo kurt,\r\nSpring sale\r\nmail: kurt@example.org\r\n"
        b"language: de\r\ntz: Europe/Berlin\r\n"
    ) in received(smtp, "kurt@example.org")
    for message in Message.objects.filter(campaign=campaign):
        assert {key: bool(message.recipient.get(key)) for key in SAMPLE_RECIPIENT} == dict.fromkeys(
            SAMPLE_RECIPIENT, True
        )


def test_a_contact_list_greets_each_contact_by_name_with_its_extra_columns(
    newsletter, smtp, run_worker, settings, committed
):
    audience = Audience.objects.create(name="Fair visitors", kind="contacts")
    Contact.objects.create(
        audience=audience, email="ada@example.net", name="Ada Lovelace", data={"plan": "Pro"}
    )
    Contact.objects.create(
        audience=audience,
        email="emmy@example.de",
        name="Emmy Noether",
        language="de",
        tz="Europe/Berlin",
        data={"plan": "Basis"},
    )
    campaign = Campaign.objects.create(
        name="Fair", event=newsletter, audience=audience, context={"headline": "Thanks"}
    )

    send(campaign, run_worker, committed)

    assert (
        b"\r\n\r\nHello Ada Lovelace,\r\nThanks\r\nmail: ada@example.net\r\n"
        b"language: en\r\ntz: " + settings.TIME_ZONE.encode() + b"\r\nplan: Pro\r\n"
    ) in received(smtp, "ada@example.net")
    assert (
        b"\r\n\r\nHallo Emmy Noether,\r\nThanks\r\nmail: emmy@example.de\r\n"
        b"language: de\r\ntz: Europe/Berlin\r\nplan: Basis\r\n"
    ) in received(smtp, "emmy@example.de")


def test_the_preview_promises_only_what_a_real_recipient_carries(
    newsletter, users, run_worker, committed
):
    """Every key of the preview's sample recipient is one a real user recipient carries."""
    grace, _, _ = users
    campaign = Campaign.objects.create(
        name="Spring",
        event=newsletter,
        audience=Audience.objects.create(name="Everyone", kind="all_users"),
        context={"headline": "Spring sale"},
    )
    send(campaign, run_worker, committed)
    real = Message.objects.get(campaign=campaign, user=grace).recipient
    assert set(SAMPLE_RECIPIENT) <= {key for key, value in real.items() if value}
    preview = template_render_preview(
        variables=newsletter.variables,
        sources=Sources(
            text="{{ recipient.name }}|{{ recipient.email }}|{{ recipient.language }}|"
            "{{ recipient.tz }}"
        ),
        context={"headline": "x"},
    )
    assert all(preview.text.split("|")), preview.text


def test_a_contacts_phone_is_checked_and_kept_in_e164():
    audience = Audience.objects.create(name="Phones", kind="contacts")
    contact = Contact(audience=audience, phone="+1 (415) 555-0123")
    contact.full_clean()
    assert contact.phone == "+14155550123"
    for wrong in ("0151 2345678", "call me", "+1 415 555 0123 ext. 7"):
        with pytest.raises(ValidationError) as error:
            Contact(audience=audience, phone=wrong).full_clean()
        assert "E.164" in " ".join(error.value.message_dict["phone"])
