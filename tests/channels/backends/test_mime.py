"""The email bytes ``MimeWriter`` writes: a standard parser reads back exactly what Django's own
build would carry (headers, text and HTML, any character), and every line stays within the
limits of RFC 5322 and SMTP."""

from __future__ import annotations

import email
import email.policy

import pytest
from django.core.mail import EmailMultiAlternatives

from channels.backends.email import UriListHeader
from channels.backends.mime import MimeWriter

TEXT = "Hallo Jürgen,\n\nIhre Bestellung A-1001 = 19,90 € ist unterwegs.\n" + "x" * 300 + "\n.\n"
HTML = "<p>Hallo <b>Jürgen</b> &amp; Co.</p>" + "<p>" + "lang " * 200 + "</p>\r\nFrom here\n"


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def content(message, kind: str) -> str:
    """A part's text, its line ends as a reader's program shows them (a QP body's hard line
    breaks are CRLF on the wire)."""
    return message.get_body((kind,)).get_content().replace("\r\n", "\n")


@pytest.mark.parametrize(
    "subject",
    [
        "Order A-1001 shipped",
        "Ihre Bestellung wurde versandt \u2013 Größe L",
        "x" * 950,
        "日本語の件名",
        "Ihre Bestellung \U0001f389 " * 12 + "ist da: " + "ä" * 60,
    ],
)
def test_what_a_parser_reads_back_is_what_was_given(subject):
    writer = MimeWriter(from_email="Shop GmbH <shop@example.com>", reply_to="help@example.com")
    raw = writer.bytes_for(
        to="juergen@example.de",
        subject=subject,
        text=TEXT,
        html=HTML,
        headers={"Message-ID": "<abc@notifier.test>"},
    )
    message = parse(raw)
    assert message["Subject"] == subject
    assert message["From"] == "Shop GmbH <shop@example.com>"
    assert message["Reply-To"] == "help@example.com"
    assert message["To"] == "juergen@example.de"
    assert message["Message-ID"] == "<abc@notifier.test>"
    assert message["Date"] and message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    assert content(message, "plain") == TEXT
    assert content(message, "html") == HTML.replace("\r\n", "\n")
    assert not message.defects and all(not part.defects for part in message.walk())
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998 and b"\n" not in line and b"\r" not in line
    head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert all(len(line) <= 78 for line in head)  # RFC 5322 2.1.1: "SHOULD"
    assert raw.isascii()  # 7bit transport: non-ASCII travels encoded


def test_the_same_fields_as_djangos_own_build():
    """Read back by a parser, Django's build and ours carry the same message."""
    fields = {
        "subject": "Größe L \u2013 versandt",
        "body": TEXT,
        "from_email": "Shop <shop@example.com>",
        "to": ["ann@example.com"],
        "headers": {"Message-ID": "<m1@notifier.test>"},
    }
    django_message = EmailMultiAlternatives(**fields)
    django_message.attach_alternative(HTML, "text/html")
    theirs = parse(django_message.message(policy=email.policy.SMTP).as_bytes())
    ours = parse(
        MimeWriter(from_email=fields["from_email"]).bytes_for(
            to="ann@example.com",
            subject=fields["subject"],
            text=TEXT,
            html=HTML,
            headers=fields["headers"],
        )
    )
    for name in ("Subject", "From", "To", "Message-ID", "MIME-Version"):
        assert ours[name] == theirs[name], name
    for kind in ("plain", "html"):
        assert content(ours, kind) == content(theirs, kind)


def test_a_text_only_message_is_one_part_and_list_unsubscribe_stays_literal():
    url = "https://notify.example.com/unsubscribe/" + "t" * 300 + "/"
    raw = MimeWriter(from_email="shop@example.com").bytes_for(
        to="ann@example.com",
        subject="Hi",
        text="Plain ASCII text.\n",
        headers={
            "List-Unsubscribe": UriListHeader("List-Unsubscribe", [url]),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    assert f"\r\nList-Unsubscribe: <{url}>\r\n".encode() in raw
    assert b"=?" not in raw
    message = parse(raw)
    assert message.get_content_type() == "text/plain"
    assert message["Content-Transfer-Encoding"] == "7bit"
    assert message.get_content().replace("\r\n", "\n") == "Plain ASCII text.\n"


@pytest.mark.parametrize(
    ("to", "subject", "headers"),
    [
        ("jürgen@example.de", "Hi", {}),  # a non-ASCII address: Django's path
        ("a@example.com", "Hi\r\nBcc: victim@example.com", {}),  # header injection
        ("a@example.com", "Hi", {"X-Tag": "a\nBcc: victim@example.com"}),
        ("a@example.com, b@example.com", "Hi", {}),  # one recipient only
    ],
)
def test_what_it_cannot_write_safely_is_left_to_django(to, subject, headers):
    writer = MimeWriter(from_email="shop@example.com")
    assert writer.bytes_for(to=to, subject=subject, text="x", headers=headers) is None
