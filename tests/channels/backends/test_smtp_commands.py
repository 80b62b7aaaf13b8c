"""The email backend's own MAIL / RCPT / DATA exchange (``_sendmail_plain``) says and does
what ``smtplib.SMTP.sendmail`` does, refusals included, against a real SMTP server."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from campaigns.bench.smtp_sink import PipeliningOffer
from channels.backends.email import _sendmail_plain
from tests.conftest import free_port

RAW = b"From: shop@example.com\r\nTo: a@example.com\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n"


@dataclass
class Scripted(PipeliningOffer):
    """An SMTP server that answers MAIL, RCPT or DATA as told, and writes down what it got."""

    mail: str | None = None
    rcpt: str | None = None
    data: str | None = None
    pipelining: bool = False  # offer PIPELINING (RFC 2920) in the EHLO reply
    seen: list[tuple[str, object]] = field(default_factory=list)
    #: For each MAIL FROM: whether its RCPT TO and DATA had arrived with it (pipelined).
    grouped: list[bool] = field(default_factory=list)

    async def handle_MAIL(self, server, session, envelope, address, options):
        waiting = bytes(server._reader._buffer).lower()  # what the client wrote after MAIL
        self.grouped.append(b"rcpt to:" in waiting and b"data\r\n" in waiting)
        self.seen.append(("MAIL", (address, tuple(options))))
        if self.mail:
            return self.mail
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        self.seen.append(("RCPT", address))
        if self.rcpt:
            return self.rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.seen.append(("DATA", envelope.original_content))
        return self.data or "250 queued"

    async def handle_RSET(self, server, session, envelope):
        self.seen.append(("RSET", None))
        return "250 OK"


def exchange(send, handler: Scripted | None = None, **answers) -> tuple[list, str, bool]:
    """Run ``send(client)`` against a server scripted with ``answers``: what the server saw,
    the exception raised (its type and values), and whether the connection is still open."""
    handler = handler or Scripted(**answers)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        client = smtplib.SMTP("127.0.0.1", port, timeout=10)
        raised = ""
        try:
            send(client)
        except smtplib.SMTPException as error:
            raised = f"{type(error).__name__}{error.args!r}"
        still_open = client.sock is not None
        if still_open:
            client.noop()
            client.quit()
        return handler.seen, raised, still_open
    finally:
        controller.stop()


def ours(client):
    _sendmail_plain(client, "shop@example.com", "a@example.com", RAW)


def smtplibs(client):
    client.sendmail("shop@example.com", ["a@example.com"], RAW)


ANSWERS = [
    {},
    {"mail": "451 4.3.0 try later"},
    {"mail": "421 4.3.2 shutting down"},
    {"rcpt": "550 5.1.1 no such user"},
    {"rcpt": "421 4.3.2 shutting down"},
    {"data": "552 5.3.4 too big"},
    {"data": "421 4.3.2 shutting down"},
]
REFUSALS = pytest.mark.parametrize(
    "answers",
    ANSWERS,
    ids=["accepted", "mail 451", "mail 421", "rcpt 550", "rcpt 421", "data 552", "data 421"],
)


@REFUSALS
def test_the_same_commands_replies_and_errors_as_smtplib_sendmail(answers):
    assert exchange(ours, **answers) == exchange(smtplibs, **answers)


def test_the_message_arrives_dot_stuffed_with_its_size_declared():
    seen, raised, _ = exchange(ours)
    assert raised == ""
    assert seen[0] == ("MAIL", ("shop@example.com", (f"SIZE={len(RAW)}",)))
    assert seen[1] == ("RCPT", "a@example.com")
    assert seen[2] == ("DATA", RAW)  # the server undid the dot-stuffing of ".leading dot"


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: x\r\n\r\nno line end at the end",
        b"Subject: x\r\n\r\n.\r\n..\r\n.end\r\nlast\r\n",
    ],
    ids=["no final CRLF", "lines of periods"],
)
def test_the_content_reaches_the_server_as_smtplib_sends_it(raw):
    def ours_with(client):
        _sendmail_plain(client, "shop@example.com", "a@example.com", raw)

    def smtplibs_with(client):
        client.sendmail("shop@example.com", ["a@example.com"], raw)

    assert exchange(ours_with) == exchange(smtplibs_with)


@REFUSALS
def test_a_server_offering_pipelining_gets_the_envelope_in_one_write_and_the_same_outcome(answers):
    """Against a server that offers PIPELINING, MAIL FROM, RCPT TO and DATA go in one write
    (two round trips a message instead of four); what the server then holds, the exception
    and the connection's state are what smtplib's unpipelined ``sendmail`` leaves: a refused
    sender or recipient delivers nothing and the transaction is reset (closed on a 421)."""
    pipelined = Scripted(pipelining=True, **answers)
    plain = Scripted(pipelining=True, **answers)
    assert exchange(ours, pipelined) == exchange(smtplibs, plain)
    assert pipelined.grouped == [True] and plain.grouped == [False]


class TakesDataRegardless(Scripted):
    """A server that answers a pipelined DATA with 354 though the recipient was refused (RFC
    2920 3.1 allows it): the client must end that DATA with a lone period, not the content."""

    async def handle_RCPT(self, server, session, envelope, address, options):
        self.seen.append(("RCPT", address))
        envelope.rcpt_tos.append("refused-but-kept@example.com")  # so that DATA is taken
        return "550 5.1.1 no such user"

    async def handle_DATA(self, server, session, envelope):
        self.seen.append(("DATA", envelope.original_content))
        return "554 5.5.1 no valid recipients"


def test_a_pipelined_data_taken_after_a_refused_recipient_is_ended_empty():
    handler = TakesDataRegardless(pipelining=True)
    seen, raised, still_open = exchange(ours, handler)
    assert raised.startswith("SMTPRecipientsRefused(")
    assert "550" in raised and "no such user" in raised
    assert seen[1:] == [("RCPT", "a@example.com"), ("DATA", b""), ("RSET", None)]
    assert still_open
