"""One-click unsubscribe (RFC 8058): headers on every email, footers on marketing ones,
signed tokens, and what a POST or a GET to the link does."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from django.core import mail
from django.test import Client

from campaigns.api import notify
from campaigns.models import Event, Message, OptOut
from campaigns.outbox.dispatch import message_content
from campaigns.outbox.sweep import drain
from campaigns.recipients.links import unsubscribe_token
from channels.backends.base import Outgoing
from channels.backends.email import EmailBackend
from channels.models import ChannelConfig
from tests import factories

pytestmark = pytest.mark.django_db

SITE = "http://127.0.0.1:8000"


@pytest.fixture
def email():
    channel, _ = ChannelConfig.objects.update_or_create(
        key="email",
        defaults={"name": "Email", "backend": "channels.backends.email.EmailBackend", "config": {}},
    )
    return channel


def make_event(key, channel, **fields):
    event = factories.EventFactory(key=key, variables=[], **fields)
    factories.TemplateFactory(
        event=event,
        channel=channel,
        subject=f"{key} news",
        text_body="Hello {{ recipient.name }}. Manage: {{ preferences_url }}",
        html_body='<p>Hi</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>',
    )
    return event


def send(event_key, recipient):
    notify(event_key, recipient, {})
    drain()
    return mail.outbox[-1]


def link_path(url: str) -> str:
    assert url.startswith(SITE + "/unsubscribe/")
    return url.removeprefix(SITE)


def test_every_email_carries_list_unsubscribe_headers(email, settings):
    settings.NOTIFIER = {**settings.NOTIFIER, "UNSUBSCRIBE_MAILTO": "unsubscribe@shop.example"}
    make_event("promo", email, marketing=True)
    sent = send("promo", {"email": "ann@example.com", "name": "Ann"})
    headers = sent.extra_headers
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = headers["List-Unsubscribe"].split(", ")
    assert https.startswith(f"<{SITE}/unsubscribe/") and https.endswith("/>")
    assert mailto.startswith("<mailto:unsubscribe@shop.example?subject=unsubscribe%20")
    # Templates get the links; a marketing event's text gets the footer line.
    assert https[1:-1] in sent.alternatives[0][0]
    assert f"Manage: {SITE}/preferences/link/" in sent.body
    assert sent.body.rstrip().endswith(https[1:-1])
    assert "Unsubscribe: " in message_content(Message.objects.get())[1]


#: RFC 2369: a comma-separated list of angle-bracketed URIs; ours is the https link, then
#: the optional mailto. Literal: no RFC 2047 encoded word may hide the URIs from a mail provider.
LIST_UNSUBSCRIBE = re.compile(r"<(https?://[^<>\s,]+)>(?:, <(mailto:[^<>\s,]+)>)?")


def raw_header(raw: bytes, name: str) -> tuple[list[bytes], str]:
    """The lines of header ``name`` as they went over the wire, and its unfolded value."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    for index, line in enumerate(head):
        if line.lower().startswith(name.lower().encode() + b":"):
            lines = [line]
            for more in head[index + 1 :]:
                if not more.startswith((b" ", b"\t")):
                    break
                lines.append(more)
            value = b"".join(lines).split(b":", 1)[1].decode("ascii").strip()
            return lines, value
    raise AssertionError(f"no {name} header in {raw[:2000]!r}")


@pytest.mark.parametrize("mailto", ["", "unsubscribe@shop.example"])
def test_list_unsubscribe_goes_over_smtp_as_literal_uris(email_channel, smtp, settings, mailto):
    """Gmail and Yahoo ignore an RFC 2047-encoded List-Unsubscribe: the URIs must be
    literal, folded only between them, and the link must work as a one-click POST."""
    settings.NOTIFIER = {**settings.NOTIFIER, "UNSUBSCRIBE_MAILTO": mailto}
    make_event("promo", email_channel, marketing=True)
    address = "ann.with.a.rather.long.mailbox.name+newsletters@subdomain.example.com"
    notify("promo", {"email": address, "name": "Ann"}, {})
    drain()
    (raw,) = smtp.raw

    assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0]  # no encoded word in any header
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    lines, value = raw_header(raw, "List-Unsubscribe")
    match = LIST_UNSUBSCRIBE.fullmatch(value)
    assert match, value
    url, mailto_uri = match.groups()
    assert len(url) > 78  # longer than a header line: the case that used to be encoded
    assert all(line.rstrip().endswith((b">", b">,")) for line in lines)  # folded between URIs
    if mailto:
        token = url.rstrip("/").rsplit("/", 1)[-1]
        assert unquote(mailto_uri) == f"mailto:{mailto}?subject=unsubscribe {token}"
    else:
        assert mailto_uri is None
    assert raw_header(raw, "List-Unsubscribe-Post")[1] == "List-Unsubscribe=One-Click"
    received = smtp.messages[0]
    assert url in received.get_body(("html",)).get_content()  # the link in the body
    assert raw_header(raw, "Message-ID")[1] == str(received["Message-ID"])

    # A mail provider's one-click POST (RFC 8058): no cookies, no CSRF token.
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        link_path(url),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    optout = OptOut.objects.get()
    assert (optout.address, optout.event.key, optout.kind, optout.source) == (
        address.lower(),
        "promo",
        "email",  # by email: every email channel, not only the one this mail came through
        "link",
    )
    assert notify("promo", {"email": address}, {}).skipped[0].reason == "opted out"


def test_transactional_text_has_no_footer_and_no_mailto_by_default(email):
    make_event("receipt", email)
    sent = send("receipt", {"email": "ann@example.com", "name": "Ann"})
    assert "Unsubscribe:" not in sent.body
    assert ", " not in sent.extra_headers["List-Unsubscribe"]


def test_test_sends_have_no_unsubscribe_header():
    backend = EmailBackend(channel_key="email", options={})
    built = backend.build(Outgoing(id=0, uuid="u", address="a@example.com", text="t"))
    assert "List-Unsubscribe" not in built.extra_headers


def test_one_click_post_opts_the_address_out_of_the_event(email, django_user_model):
    user = django_user_model.objects.create_user("ann", "ann@example.com", "pw-ann-123")
    promo = make_event("promo", email, marketing=True)
    make_event("other", email, marketing=True)
    sent = send("promo", user)
    path = link_path(sent.extra_headers["List-Unsubscribe"][1:-1])

    client = Client(enforce_csrf_checks=True)  # a mail provider: no session, no CSRF token
    response = client.post(path, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert "You are unsubscribed" in response.content.decode()
    optout = OptOut.objects.get()
    assert (optout.user, optout.address, optout.event, optout.kind, optout.channel) == (
        user,
        "ann@example.com",
        promo,
        "email",
        None,
    )
    assert client.post(path).status_code == 200  # repeating is harmless
    assert OptOut.objects.count() == 1
    assert notify("promo", user, {}).skipped[0].reason == "opted out"
    assert notify("other", user, {}).messages


def test_unsubscribing_by_email_covers_every_email_channel(email, django_user_model):
    """The issue's case: an operator has two email channels (the site's and an SMTP relay);
    unsubscribing from an email sent through one leaves the person subscribed through
    neither, and a push channel is not touched."""
    relay = factories.ChannelFactory(
        key="relay", name="SMTP relay", backend="channels.backends.email.EmailBackend"
    )
    push = factories.ChannelFactory(
        key="push", backend="tests.notify_app.backends.TokenBackend", config={}
    )
    user = django_user_model.objects.create_user("ann", "ann@example.com", "pw-ann-123")
    make_event("promo", email, marketing=True)
    for channel in (relay, push):
        factories.TemplateFactory(event=Event.objects.get(key="promo"), channel=channel)
    sent = send("promo", user)
    path = link_path(sent.extra_headers["List-Unsubscribe"][1:-1])
    assert Client().post(path).status_code == 200
    result = notify("promo", {"user_id": user.pk, "push_token": "tok-1"}, {})
    assert sorted((s.channel, s.reason) for s in result.skipped) == [
        ("email", "opted out"),
        ("relay", "opted out"),
    ]
    assert [m.channel.key for m in result.messages] == ["push"]


def test_get_shows_a_confirmation_page_and_changes_nothing(email):
    make_event("promo", email, marketing=True)
    sent = send("promo", {"email": "ann@example.com"})
    path = link_path(sent.extra_headers["List-Unsubscribe"][1:-1])
    response = Client().get(path)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Unsubscribe</button>" in html and "/preferences/link/" in html
    assert not OptOut.objects.exists()


def test_marketing_scope_and_mandatory_events_turn_off_all_marketing(email):
    promo = make_event("promo", email, marketing=True, unsubscribe_scope="marketing")
    tips = make_event("tips", email, marketing=True)
    make_event("account-reset", email, mandatory=True)
    make_event("receipt", email)
    for key in ("promo", "account-reset"):
        OptOut.objects.all().delete()
        token = unsubscribe_token(
            address="Ann@Example.com", event_key=key, channel_key="email", user_id=None
        )
        assert Client().post(f"/unsubscribe/{token}/").status_code == 200
        (optout,) = OptOut.objects.all()
        assert (optout.address, optout.event, optout.channel, optout.scope) == (
            "ann@example.com",
            None,
            None,
            "marketing",
        )
    # It covers every marketing event, those created later too, and nothing else.
    later = make_event("later-promo", email, marketing=True)
    receipt = Event.objects.get(key="receipt")
    skipped = {
        event.key: [s.reason for s in notify(event.key, {"email": "ann@example.com"}).skipped]
        for event in (promo, tips, later, receipt)
    }
    assert skipped == {
        "promo": ["opted out"],
        "tips": ["opted out"],
        "later-promo": ["opted out"],
        "receipt": [],
    }


def test_tampered_or_expired_tokens_get_400_and_change_nothing(email, settings):
    make_event("promo", email)
    token = unsubscribe_token(
        address="ann@example.com", event_key="promo", channel_key="email", user_id=None
    )
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    for bad in (tampered, "nonsense", token.replace(":", "")):
        for method in ("get", "post"):
            response = getattr(Client(), method)(f"/unsubscribe/{bad}/")
            assert response.status_code == 400
            assert "This link does not work" in response.content.decode()
    settings.NOTIFIER = {**settings.NOTIFIER, "LINK_MAX_AGE": -1}
    response = Client().post(f"/unsubscribe/{token}/")
    assert response.status_code == 400 and "expired" in response.content.decode()
    assert not OptOut.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"a": "erika@example.com", "e": "order-shipped", "c": "email", "u": None},
        {"u": 42},
        {"a": "x" * 300 + "@example.com", "e": "newsletter", "c": "email", "u": 7},
    ],
    ids=["unsubscribe", "preferences", "long enough to compress"],
)
def test_links_are_signed_as_django_signs_them_and_read_back_by_it(payload, settings, monkeypatch):
    """The batch's own signer (the HMAC key derived once, a small zlib window) makes tokens
    Django's ``TimestampSigner.unsign_object`` reads back, and, uncompressed, the very token
    Django's ``sign_object`` makes; one signed under another secret key is refused."""
    from django.core import signing

    from campaigns.recipients import links

    monkeypatch.setattr("time.time", lambda: 1_764_550_000.25)
    ours = links._sign(payload, links.UNSUBSCRIBE_SALT)
    django = signing.TimestampSigner(salt=links.UNSUBSCRIBE_SALT)
    assert django.unsign_object(ours) == payload
    assert ours.startswith(".") == (len(str(payload)) > 200)  # only the long one shrinks
    if not ours.startswith("."):
        assert ours == django.sign_object(payload, compress=True)
    settings.SECRET_KEY = "another-secret-key-" + "k" * 40
    with pytest.raises(signing.BadSignature):
        signing.TimestampSigner(salt=links.UNSUBSCRIBE_SALT).unsign_object(ours)
    moved = links._sign(payload, links.UNSUBSCRIBE_SALT)  # signed with the new key at once
    assert signing.TimestampSigner(salt=links.UNSUBSCRIBE_SALT).unsign_object(moved) == payload
