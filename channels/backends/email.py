"""Email through Django's mailers, so SMTP or any Django email backend (django-anymail's
ESPs included) works without code of ours.

By default a channel uses ``settings.MAILERS["default"]``; ``mailer`` names another alias.
Setting ``host`` (and the other connection options) gives the channel an SMTP connection of
its own instead, configured from the admin.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from urllib.parse import quote

from django import forms
from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.utils.module_loading import import_string

from ..conf import channel_settings
from .base import (
    BaseBackend,
    BaseConfigForm,
    DeliveryError,
    Outgoing,
    PermanentError,
    SendResult,
    TransientError,
)
from .fields import EMAIL_FIELDS
from .mime import MimeWriter, RawMessage

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
CONNECTION_OPTIONS = ("host", "port", "username", "password", "use_tls", "use_ssl", "timeout")
#: Connections a worker keeps to a channel's own SMTP host (its ``connections`` option): one
#: message is delivered while the envelopes of the next ones go over the others. Four cover a
#: server without PIPELINING, whose envelope takes three round trips to one delivery's one.
CONNECTIONS = MAX_CONNECTIONS = 4
#: RFC 5322's hard limit on a line, without its CRLF.
MAX_LINE = 998


def _plain_addr_spec(address: str) -> bool:
    """An address SMTP takes as it is: ASCII, one ``@`` between a local part and a domain,
    nothing that would need quoting (the rest goes through Django's ``prep_address``)."""
    local, at, domain = address.rpartition("@")
    return bool(
        at
        and local
        and domain
        and address.isascii()
        and address.isprintable()
        and "@" not in local
        and not any(c in address for c in ' ,;:<>()[]"\\')
    )


def _transaction_begin(client: smtplib.SMTP, sender: str, recipient: str, raw: bytes) -> bool:
    """Writes the commands that open a message's transaction, without reading a reply: MAIL
    FROM, and where the server offers PIPELINING (RFC 2920: Postfix, Exim and the ESPs'
    relays do) RCPT TO and DATA with it, in one write, which saves the message two round
    trips. True when the three went. Nothing is delivered before the content's final period,
    so a transaction begun and dropped sends nothing."""
    client.ehlo_or_helo_if_needed()
    esmtp = client.does_esmtp
    size = f" SIZE={len(raw)}" if esmtp and client.has_extn("size") else ""
    if esmtp and client.has_extn("pipelining"):
        client.send(f"mail FROM:<{sender}>{size}\r\nrcpt TO:<{recipient}>\r\ndata\r\n")
        return True
    client.putcmd("mail", f"FROM:<{sender}>{size}")
    return False


def _sendmail_plain(
    client: smtplib.SMTP,
    sender: str,
    recipient: str,
    raw: bytes,
    meanwhile: Callable[[], None] | None = None,
    *,
    begun: bool | None = None,
) -> None:
    """``client.sendmail(sender, [recipient], raw)`` for addresses ``_plain_addr_spec``
    accepted: the same exceptions for the same replies, without ``smtplib.quoteaddr``
    parsing both addresses again for every message (``email.utils.parseaddr``, a tenth of a
    millisecond each), and pipelined where the server allows it. ``meanwhile`` is called once
    the content is written and before its reply is read: work done while the server reads
    the message. ``begun``: what ``_transaction_begin`` returned if it was called already
    (its replies are read here); None to begin now."""
    _envelope(client, sender, recipient, raw, begun=begun)
    _content(client, raw, meanwhile)


def _envelope(
    client: smtplib.SMTP, sender: str, recipient: str, raw: bytes, *, begun: bool | None = None
) -> None:
    """A message's transaction up to the server's go-ahead for its content (354), waiting for
    each reply (``_envelope_steps`` with nothing done between them)."""
    for _ in _envelope_steps(client, sender, recipient, raw, begun=begun):
        pass


def _envelope_steps(
    client: smtplib.SMTP, sender: str, recipient: str, raw: bytes, *, begun: bool | None = None
) -> Iterator[None]:
    """A message's transaction up to the server's go-ahead for its content (354): MAIL FROM,
    RCPT TO and DATA, begun here unless ``begun`` says how they were, and their replies read.
    It yields each time it has written what it next waits a reply for (once when pipelined,
    three times when not), so that its caller works while the server answers. A refusal
    raises what ``sendmail`` raises, the transaction reset."""
    pipelined = _transaction_begin(client, sender, recipient, raw) if begun is None else begun
    yield
    if pipelined:
        (code, reply), rcpt, data = _replies(client, 3)
        if code != 250 or rcpt[0] not in (250, 251):
            _pipelined_abandon(client, (code, rcpt[0], data[0]))
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, sender)
            raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
        code, reply = data
    else:
        code, reply = client.getreply()
        if code != 250:
            _sendmail_abandon(client, code)
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        client.putcmd("rcpt", f"TO:<{recipient}>")
        yield
        code, reply = client.getreply()
        if code not in (250, 251):
            _sendmail_abandon(client, code)
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        client.putcmd("data")  # smtplib's SMTP.data(), with room between writing and reading
        yield
        code, reply = client.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)


def _content(client: smtplib.SMTP, raw: bytes, meanwhile: Callable[[], None] | None = None) -> None:
    """A message's content after the server's go-ahead, then its reply; ``meanwhile`` runs
    between the two, while the server reads it."""
    client.send(_data_block(raw))
    if meanwhile is not None:
        meanwhile()
    _final_reply(client)


def _final_reply(client: smtplib.SMTP) -> None:
    """The reply to a message's content: its fate."""
    code, reply = client.getreply()
    if code != 250:
        _sendmail_abandon(client, code)
        raise smtplib.SMTPDataError(code, reply)


def _replies(client: smtplib.SMTP, count: int) -> list[tuple[int, bytes]]:
    """The replies to ``count`` pipelined commands. A server that closes the connection
    after refusing one (a 421) leaves the others unanswered: they read as that 421."""
    replies = [client.getreply()]
    while len(replies) < count:
        try:
            replies.append(client.getreply())
        except smtplib.SMTPServerDisconnected:
            replies.append((421, b"connection closed"))
    return replies


def _pipelined_abandon(client: smtplib.SMTP, codes: tuple[int, ...]) -> None:
    """After a refused MAIL FROM or RCPT TO of a pipelined transaction: a server that took
    its DATA all the same gets the lone period that ends it (RFC 2920 3.1: with no valid
    recipient it delivers nothing), then the transaction is reset, or the connection closed
    after a 421."""
    if codes[2] == 354:
        client.send(b".\r\n")
        try:
            codes = (*codes, client.getreply()[0])
        except smtplib.SMTPServerDisconnected:
            return
    if client.sock is None:  # closed by a reply read above
        return
    _sendmail_abandon(client, 421 if 421 in codes else 0)


_LEADING_PERIOD = re.compile(rb"(?m)^\.")


def _data_block(raw: bytes) -> bytes:
    """The message as DATA carries it (RFC 5321 4.5.2): a leading period doubled, a final
    CRLF, then the lone period that ends it."""
    block = raw
    if raw.startswith(b".") or b"\n." in raw:  # rare: a line of the content begins with one
        block = _LEADING_PERIOD.sub(b"..", raw)
    if not block.endswith(b"\r\n"):
        block += b"\r\n"
    return block + b".\r\n"


def _sendmail_abandon(client: smtplib.SMTP, code: int) -> None:
    """As ``sendmail`` does after a refusal: a 421 closes the connection, anything else
    resets the transaction for the next message."""
    if code == 421:
        client.close()
    else:
        client._rset()


@dataclass(eq=False)
class _Flight:
    """A message of ``_send_lanes`` on its way over one of the lanes."""

    message: Outgoing
    email: object
    lane: object  # None while it waits for one (``_lane_retire``)
    steps: Iterator[None] | None = None  # its envelope, while replies are awaited
    failure: SendResult | None = None


class _Ahead:
    """The next message of a send loop, taken and built ahead of its turn: ``take()`` pulls
    it from the caller's iterator and builds it. A failed build is kept for that message's
    turn; a failing iterator is raised by ``raise_failure()`` once the current message's
    result is out."""

    def __init__(self, items: Iterator[Outgoing], build: Callable[[Outgoing], object]):
        self.items = items
        self.build = build
        self.message: Outgoing | None = None
        self.email: object = None
        self.taken = False
        self.failure: Exception | None = None

    def take(self) -> None:
        self.taken = True
        try:
            self.message = next(self.items, None)
        except Exception as error:
            self.failure = error
            return
        if self.message is not None:
            try:
                self.email = self.build(self.message)
            except Exception as error:
                self.email = error

    def clear(self) -> None:
        self.message, self.email, self.taken = None, None, False

    def raise_failure(self) -> None:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure


def _connection_lost(error: OSError) -> bool:
    """The connection is gone (closed by the server, reset), as opposed to a reply that
    refused something (``SMTPException`` is an ``OSError`` too)."""
    return isinstance(error, smtplib.SMTPServerDisconnected) or not isinstance(
        error, smtplib.SMTPException
    )


def _nodelay(lane: SmtpBackend) -> None:
    """Turns off Nagle's algorithm on a connection just opened: a short write (a command, a
    lone period ending a refused pipelined transaction) that follows one the server has not
    acknowledged yet must not wait for its delayed acknowledgement: 40 ms each."""
    sock = getattr(getattr(lane, "connection", None), "sock", None)  # SMTP only
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _lane_drop(lane: SmtpBackend | None) -> None:
    """Closes a connection without a QUIT (in a transaction, a QUIT would be read as
    content): the server ends what was begun on it, undelivered."""
    client = getattr(lane, "connection", None)
    if client is not None:
        client.close()
        lane.connection = None


class PrebuiltEmail(EmailMultiAlternatives):
    """An email whose bytes were written already (``MimeWriter``): Django's SMTP backend
    sends them as they are. Its fields stay set, for whatever else reads them."""

    raw: bytes = b""

    def message(self, *, policy=None) -> RawMessage:
        return RawMessage(self.raw)


class UriListHeader(str):
    """A header whose value is a list of ``<URI>``s (RFC 2369: ``List-Unsubscribe``), written
    literally: each URI whole, folded only between them.

    Django 6.1 builds messages with the ``email`` package's modern policies, which treat a
    plain string as unstructured text and RFC 2047-encode any word longer than a line; a
    signed unsubscribe URL always is, and Gmail and Yahoo ignore a ``List-Unsubscribe`` whose
    URIs are encoded, so one-click unsubscribe (RFC 8058) would never be offered. The
    policy keeps a value that has a ``name`` as it is (``header_store_parse``) and asks it
    to ``fold()`` itself; being a ``str`` it passes through Django's ``EmailMessage``
    unchanged, and ESP backends (django-anymail) read it as the plain value."""

    name: str
    uris: tuple[str, ...]

    def __new__(cls, name: str, uris: list[str] | tuple[str, ...]):
        if not uris:
            raise ValueError(f"{name}: no URI")
        for uri in uris:
            if not uri.isascii() or any(c in uri for c in "<>\r\n\t ,"):
                raise ValueError(f"{name}: {uri!r} cannot be written literally in a header")
        value = super().__new__(cls, ", ".join(f"<{uri}>" for uri in uris))
        value.name = name
        value.uris = tuple(uris)
        return value

    def __getnewargs__(self) -> tuple[str, tuple[str, ...]]:  # copy and pickle (locmem's outbox)
        return self.name, self.uris

    def fold(self, *, policy) -> str:
        """One URI per line: ``Name: <a>,`` CRLF `` <b>``. The unfolded value is ``<a>, <b>``."""
        lines = [f"{self.name}: <{self.uris[0]}>"] + [f" <{uri}>" for uri in self.uris[1:]]
        lines = [line + "," for line in lines[:-1]] + lines[-1:]
        for line in lines:
            if len(line) > MAX_LINE:
                raise ValueError(
                    f"{self.name}: a URI of {len(line)} characters does not fit in a header "
                    f"line ({MAX_LINE} at most)"
                )
        return policy.linesep.join(lines) + policy.linesep


def list_unsubscribe_headers(unsubscribe_url: str) -> dict[str, str]:
    """``List-Unsubscribe`` (the message's https link, and a mailto when ``UNSUBSCRIBE_MAILTO``
    is set) and ``List-Unsubscribe-Post`` for one email (RFC 2369, RFC 8058). The first is a
    ``UriListHeader``, so its URIs go out literally, never RFC 2047-encoded."""
    uris = [unsubscribe_url]
    mailto = channel_settings.UNSUBSCRIBE_MAILTO
    if mailto:
        token = unsubscribe_url.rstrip("/").rsplit("/", 1)[-1]
        uris.append(f"mailto:{mailto}?subject={quote('unsubscribe ' + token)}")
    return {
        "List-Unsubscribe": UriListHeader("List-Unsubscribe", uris),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


class EmailConfigForm(BaseConfigForm):
    mailer = forms.CharField(
        required=False,
        help_text="Alias in settings.MAILERS to send through (default: 'default'). "
        "Ignored when a host is set.",
    )
    from_email = forms.CharField(required=False, help_text="Sender; default DEFAULT_FROM_EMAIL.")
    reply_to = forms.EmailField(required=False)
    backend = forms.CharField(
        required=False, help_text=f"Django email backend for a host of its own ({SMTP_BACKEND})."
    )
    host = forms.CharField(required=False)
    port = forms.IntegerField(required=False, min_value=1, max_value=65535)
    username = forms.CharField(required=False)
    password = forms.CharField(required=False)
    use_tls = forms.BooleanField(required=False)
    use_ssl = forms.BooleanField(required=False)
    timeout = forms.FloatField(required=False, min_value=0.1, initial=20)
    connections = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_CONNECTIONS,
        initial=CONNECTIONS,
        help_text=f"Connections to the host a worker sends over (1 to {MAX_CONNECTIONS}, "
        f"default {CONNECTIONS}): while the server reads one message, the envelopes of the "
        "next ones go over the others. Each message is still delivered only once the one "
        "before it is recorded. A server that refuses some of them is sent to over those "
        "it takes.",
    )

    secret_fields = ("password",)

    def clean_mailer(self):
        alias = self.cleaned_data["mailer"]
        if alias and alias not in getattr(settings, "MAILERS", {}):
            raise ValidationError(f"no mailer {alias!r} in settings.MAILERS")
        return alias

    def clean(self):
        data = super().clean()
        if data.get("use_tls") and data.get("use_ssl"):
            raise ValidationError("use_tls and use_ssl are mutually exclusive")
        return data


class EmailBackend(BaseBackend):
    key = "email"
    verbose_name = "Email"
    address_key = "email"
    template_fields = EMAIL_FIELDS  # the preheader is folded into the HTML when rendered
    ConfigForm = EmailConfigForm
    category = "email"
    unsubscribe_headers = True

    connection = None
    #: ``open()`` succeeded and no ``close()`` came since (``build()`` may make the mailer
    #: object without opening it).
    opened = False
    #: The connections besides ``connection`` that ``_send_lanes`` sends over.
    spares: list[SmtpBackend] = []  # replaced, never changed in place

    def _connect(self):
        options = self.options
        if options.get("host"):
            backend_class = import_string(options.get("backend") or SMTP_BACKEND)
            kwargs = {name: options[name] for name in CONNECTION_OPTIONS if name in options}
            kwargs.setdefault("timeout", 20)
            return backend_class(alias=f"notifier-channel-{self.channel_key}", **kwargs)
        return mail.mailers[options.get("mailer") or "default"]

    def open(self) -> None:
        if self.unreachable is not None:
            raise self.unreachable
        if self.connection is None:
            self.connection = self._connect()
        try:
            self.connection.open()
            self.opened = True
        except (smtplib.SMTPException, OSError) as error:
            self.close()
            raise self._unreachable(error) from error
        _nodelay(self.connection)

    #: Why the host could not be reached during the current ``send()``: its other messages
    #: fail with the same error at once instead of each waiting out the timeout again.
    unreachable: DeliveryError | None = None
    #: Connections the host took when a further one was refused (``_send_lanes``): later
    #: batches of this backend open no more than that.
    lane_cap: int | None = None

    def _unreachable(self, error: Exception) -> DeliveryError:
        """``_open_error``, kept for the rest of the send (``unreachable``) and marked as an
        open that failed (``opening``): nothing of a message went out."""
        failure = self._open_error(error)
        failure.opening = True
        self.unreachable = failure
        return failure

    def _open_error(self, error: Exception) -> DeliveryError:
        """Refused, unreachable, silent past the timeout, or a failed TLS or login: the
        provider's words, with where we tried, for the admin's "Send test" and the message's
        last_error."""
        where = f"{self.options['host']}:{self.options.get('port') or 25}"
        if not self.options.get("host"):
            where = f"mailer {self.options.get('mailer') or 'default'!r}"
        if isinstance(error, smtplib.SMTPResponseException):
            return self._smtp_error(error.smtp_code, error.smtp_error)
        return TransientError(f"SMTP connection to {where} failed: {type(error).__name__}: {error}")

    def close(self) -> None:
        self.opened = False
        self.lane_cap = None
        spares, self.spares = self.spares, []
        try:
            for spare in spares:
                _lane_drop(spare)
            if self.connection is not None:
                self.connection.close()
        finally:
            self.connection = None

    writer: MimeWriter | None = None

    def build(self, message: Outgoing) -> EmailMultiAlternatives:
        """The message as Django sends it. Through an SMTP connection its bytes are written
        by ``MimeWriter`` (a tenth of the cost of Django's own build, the same standards);
        other mailers (an ESP through django-anymail, the console) read its fields."""
        headers = {"Message-ID": f"<{message.uuid}@{channel_settings.EMAIL_DOMAIN}>"}
        if message.links.get("unsubscribe_url"):  # a notification: one-click unsubscribe
            headers.update(list_unsubscribe_headers(message.links["unsubscribe_url"]))
        from_email = self.options.get("from_email") or settings.DEFAULT_FROM_EMAIL
        reply_to = self.options.get("reply_to") or ""
        raw = None
        if self.connection is None:  # what it would send through (nothing is opened here)
            self.connection = self._connect()
        if isinstance(self.connection, SmtpBackend):
            if self.writer is None:
                self.writer = MimeWriter(from_email=from_email, reply_to=reply_to)
            raw = self.writer.bytes_for(
                to=message.address,
                subject=message.subject,
                text=message.text,
                html=message.html,
                headers=headers,
            )
        email = (EmailMultiAlternatives if raw is None else PrebuiltEmail)(
            subject=message.subject,
            body=message.text,
            from_email=from_email,
            to=[message.address],
            reply_to=[reply_to] if reply_to else None,
            headers=headers,
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        if raw is not None:
            email.raw = raw
        return email

    envelope_from: str = ""

    def _smtp_send(
        self,
        email: PrebuiltEmail,
        meanwhile: Callable[[], None] | None = None,
        *,
        begun: bool | None = None,
    ) -> None:
        """What Django's SMTP backend does for one message, without parsing the sender and
        the recipient again for each one (its ``prep_address``, a third of a millisecond):
        the sender is parsed once per channel, and ``MimeWriter`` only writes bytes for a
        plain ASCII addr-spec, which is its own envelope address. ``begun``: the message's
        transaction was begun already (``_transaction_start``)."""
        connection = self.connection
        if not self.envelope_from:
            self.envelope_from = connection.prep_address(email.from_email)
        with connection._lock:
            if not _plain_addr_spec(self.envelope_from):
                if connection.connection is None:
                    self._lane_open(connection)
                connection.connection.sendmail(self.envelope_from, email.to, email.raw)
                return
            for _ in self._envelope_on(connection, email.to[0], email.raw, begun=begun):
                pass
            _content(connection.connection, email.raw, meanwhile)

    def _direct(self, message: Outgoing, email: object) -> bool:
        """Whether this message goes to the SMTP server by ``_smtp_send``: bytes written by
        ``MimeWriter``, a plain recipient, and Django's own ``_send`` (not a subclass that
        signs, say)."""
        return (
            isinstance(email, PrebuiltEmail)
            and type(self.connection)._send is SmtpBackend._send
            and _plain_addr_spec(message.address)
        )

    def _transaction_start(self, ahead: _Ahead) -> bool | None:
        """Begins the transaction of the message taken ahead (``_transaction_begin``), when
        it goes the direct way on an open connection: the server reads its commands while
        the caller journals the current result, so the connection does not wait for that.
        Their replies are read in its turn. None when it was not begun. Nothing of it is
        delivered before its content goes, after the caller took the loop up again: a worker
        killed meanwhile repeats at most the message whose result was not journalled, as
        before."""
        message, email = ahead.message, ahead.email
        if not (ahead.taken and message is not None and self.opened):
            return None
        client = getattr(self.connection, "connection", None)
        sender = self.envelope_from
        if client is None or not _plain_addr_spec(sender) or not self._direct(message, email):
            return None
        try:
            with self.connection._lock:
                return _transaction_begin(client, sender, message.address, email.raw)
        except (smtplib.SMTPException, OSError):
            self._drop()  # the message's own turn connects again, and says what fails
            return None

    def _drop(self) -> None:
        """Closes the connection without a QUIT: with a transaction begun (in DATA, even, where
        a QUIT would be read as content and wait for its reply), the server ends it unsent."""
        _lane_drop(self.connection)
        self.close()

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        """The send loop, one result per message, yielded (and journalled by the caller)
        before the next message is delivered. With several connections to the channel's
        host, ``_send_lanes``. With one, the next message is taken from ``messages`` (the caller
        renders it then) and built while the server reads this one, between writing its
        content and reading the reply, and its transaction is begun while the caller
        journals this one's result: the connection does not wait for that work. A host that
        cannot be reached is tried once per batch: the batch's other messages fail with the
        same error at once (``unreachable``)."""
        self.unreachable = None  # each batch tries the host again
        try:
            if self._lanes() > 1:
                yield from self._send_lanes(iter(messages))
            else:
                yield from self._send_one_connection(iter(messages))
        finally:
            self.unreachable = None  # what this batch saw says nothing of the next

    def _send_one_connection(self, items: Iterator[Outgoing]) -> Iterator[SendResult]:
        ahead = _Ahead(items, self.build)
        ahead.take()
        started: bool | None = None  # the message ahead's transaction, begun (its replies unread)
        try:
            while ahead.message is not None:
                message, email = ahead.message, ahead.email
                ahead.clear()
                begun, started = started, None
                result = self._result(message, email, meanwhile=ahead.take, begun=begun)
                started = self._transaction_start(ahead)
                yield result
                if not ahead.taken:  # not taken during the send (it went another way, or failed)
                    ahead.take()
                ahead.raise_failure()
            ahead.raise_failure()  # the very first take
        finally:
            if started is not None:  # the caller stopped with a transaction begun
                self._drop()

    def _lanes(self) -> int:
        """How many connections ``send`` uses: the ``connections`` option, for a channel's
        own host that Django's SMTP backend serves as it is (not a subclass that signs, say)
        from a plain sender address; one otherwise."""
        wanted = int(self.options.get("connections") or CONNECTIONS)
        if wanted < 2 or not self.options.get("host"):
            return 1
        if self.connection is None:
            self.connection = self._connect()
        if type(self.connection) is not SmtpBackend:
            return 1
        if not self.envelope_from:
            from_email = self.options.get("from_email") or settings.DEFAULT_FROM_EMAIL
            self.envelope_from = self.connection.prep_address(from_email)
        return min(wanted, MAX_CONNECTIONS) if _plain_addr_spec(self.envelope_from) else 1

    def _send_lanes(self, items: Iterator[Outgoing]) -> Iterator[SendResult]:
        """The send loop over several connections ("lanes"). While the server reads one
        message, the envelopes of the messages after it go over the other lanes, each
        command written as soon as its lane may, and every reply read in the order the
        commands went, so the server always has something of this worker's to answer. The
        loop works while it answers: it takes the next message from the caller (who renders
        it) and builds it. A message's content goes once the one before it is delivered and
        its result handed to the caller, who journals it: the server delivers one message
        at a time, in order, and a worker killed at any point repeats at most the message
        whose result it had not journalled. A message that cannot go this way (an address
        that needs quoting, a build that failed) goes the ordinary way once those before it
        are done."""
        lanes = self._lane_list()
        ahead = _Ahead(items, self.build)
        flights: deque[_Flight] = deque()  # envelopes on their way, in the messages' order
        waiting: deque[_Flight] = deque()  # whose reply is read next, in the commands' order
        committing: _Flight | None = None  # content sent, its reply unread
        try:
            ahead.take()
            while True:
                if (
                    committing is None
                    and flights
                    and flights[0].steps is None
                    and flights[0].lane is not None
                ):
                    flight = flights.popleft()  # its turn: nothing else is done first
                    if flight.failure is not None:
                        yield flight.failure
                        continue
                    try:
                        flight.lane.connection.send(_data_block(flight.email.raw))
                    except Exception as error:
                        drop = partial(_lane_drop, flight.lane)
                        yield SendResult(flight.message, error=self._delivery_error(error, drop))
                        continue
                    committing = flight
                    waiting.append(flight)
                    continue
                parked = next((flight for flight in flights if flight.lane is None), None)
                if parked is not None or (  # an envelope begins on a free lane
                    ahead.message is not None
                    and len(flights) < max(1, len(lanes) - 1)
                    and self._direct(ahead.message, ahead.email)
                ):
                    busy = {flight.lane for flight in flights}
                    if committing is not None:
                        busy.add(committing.lane)
                    lane = next((lane for lane in lanes if lane not in busy), None)
                    if lane is not None:
                        if parked is not None:  # it waited for a lane: its turn comes first
                            flight, parked.lane = parked, lane
                        else:
                            flight = _Flight(ahead.message, ahead.email, lane)
                            ahead.clear()
                            flights.append(flight)
                        if self._flight_step(flight, self._envelope_on):
                            waiting.append(flight)
                        else:
                            self._lane_retire(flight, lanes)
                        if flight is not parked:
                            ahead.take()  # while the server answers
                        continue
                if waiting:
                    flight = waiting.popleft()
                    if flight is committing:
                        committing = None
                        yield self._lane_result(flight.lane, flight.message)
                    elif self._flight_step(flight):
                        waiting.append(flight)
                    else:
                        self._lane_retire(flight, lanes)
                    continue
                if flights:  # every lane held by a message after one still waiting for a lane
                    raise RuntimeError("email send loop: no connection left for the next message")
                if ahead.message is None:
                    break
                yield self._result(ahead.message, ahead.email)  # nothing before it is left
                ahead.clear()
                ahead.take()
                lanes = self._lane_list()  # a failure there closes them all
            ahead.raise_failure()
        finally:
            for flight in flights:  # the caller stopped: the server never gets their content
                if flight.lane is not None:
                    _lane_drop(flight.lane)
            if committing is not None:  # stopped by an error in the caller: fate unknown
                _lane_drop(committing.lane)
            if self.connection is not None and self.connection.connection is None:
                self.opened = False

    def _lane_retire(self, flight: _Flight, lanes: list[SmtpBackend]) -> None:
        """After a flight's envelope ended: if the host would not open its lane while others
        are open (a server that takes fewer connections from one client than
        ``connections``), that lane and those not opened yet leave ``lanes``, later batches
        open no more (``lane_cap``), and the message waits for another lane (nothing of it
        went out). Any other failure, or one with no other lane open (the host is down), is
        left as the message's own."""
        error = flight.failure.error if flight.failure is not None else None
        if not getattr(error, "opening", False):
            return
        if not any(lane is not flight.lane and lane.connection is not None for lane in lanes):
            return
        lanes[:] = [lane for lane in lanes if lane.connection is not None]  # as many as it took
        self.lane_cap = len(lanes)
        flight.lane, flight.failure = None, None
        self.unreachable = None  # the host is there: the next lane to open tries it

    def _flight_step(self, flight: _Flight, begin: Callable | None = None) -> bool:
        """The next step of a message's envelope (``begin`` makes its steps): the reply to the
        last command read and the next command written. True while a reply is awaited; once
        through, or failed, ``flight.steps`` is None (``flight.failure`` says which)."""
        try:
            if begin is not None:
                flight.steps = begin(flight.lane, flight.message.address, flight.email.raw)
            next(flight.steps)
            return True
        except StopIteration:
            pass
        except Exception as error:
            drop = partial(_lane_drop, flight.lane)
            flight.failure = SendResult(flight.message, error=self._delivery_error(error, drop))
        flight.steps = None
        return False

    def _lane_list(self) -> list[SmtpBackend]:
        """The connections (opened when a message needs one), made anew after a ``close()``
        (an ordinary send that failed closes them all); no more than ``lane_cap``, the open
        ones kept first."""
        if self.connection is None:
            self.connection = self._connect()
        cap = min(self._lanes(), self.lane_cap or MAX_CONNECTIONS)
        spares = sorted(self.spares, key=lambda lane: lane.connection is None)
        lanes = [self.connection, *spares]
        for lane in lanes[cap:]:
            _lane_drop(lane)
        lanes = lanes[:cap]
        while len(lanes) < cap:
            lanes.append(self._connect())
        self.spares = lanes[1:]
        return lanes

    def _envelope_on(
        self, lane: SmtpBackend, recipient: str, raw: bytes, *, begun: bool | None = None
    ) -> Iterator[None]:
        """A message's envelope on ``lane`` (``_envelope_steps``), connected if need be. A
        connection kept from an earlier batch that the server closed meanwhile (servers drop
        idle clients after a few minutes) is opened again once: nothing of the message had
        gone."""
        kept = lane.connection is not None
        if not kept:
            self._lane_open(lane)
            begun = None
        try:
            yield from _envelope_steps(
                lane.connection, self.envelope_from, recipient, raw, begun=begun
            )
        except OSError as error:
            if not kept or not _connection_lost(error):
                raise
            _lane_drop(lane)
            self._lane_open(lane)
            yield from _envelope_steps(lane.connection, self.envelope_from, recipient, raw)

    def _lane_open(self, lane: SmtpBackend) -> None:
        if self.unreachable is not None:
            raise self.unreachable
        try:
            lane.open()
        except (smtplib.SMTPException, OSError) as error:
            _lane_drop(lane)
            raise self._unreachable(error) from error
        _nodelay(lane)
        if lane is self.connection:
            self.opened = True

    def _lane_result(self, lane: SmtpBackend, message: Outgoing | None) -> SendResult:
        """The result of the message whose content went over ``lane``."""
        try:
            _final_reply(lane.connection)
        except Exception as error:
            return SendResult(message, error=self._delivery_error(error, partial(_lane_drop, lane)))
        return SendResult(message, provider_id=f"<{message.uuid}@{channel_settings.EMAIL_DOMAIN}>")

    def _result(
        self,
        message: Outgoing,
        email: object,
        *,
        meanwhile: Callable[[], None] | None = None,
        begun: bool | None = None,
    ) -> SendResult:
        """A message sent the ordinary way (``_send_built``), or the failure of building it
        (``email`` is then that exception), as a result."""
        try:
            if isinstance(email, Exception):
                raise email
            provider_id = self._send_built(message, email, meanwhile=meanwhile, begun=begun)
        except DeliveryError as error:
            return SendResult(message, error=error)
        except Exception as error:
            return SendResult(message, error=self.classify(error))
        return SendResult(message, provider_id=str(provider_id or ""))

    def _delivery_error(self, error: Exception, drop: Callable[[], None]) -> DeliveryError:
        """What a send's exception says of its message. A refused recipient keeps the
        connection; a refusal of anything else or a broken connection calls ``drop`` (the
        next message connects anew); an invalid address (Django refuses CR/LF, bad syntax)
        is permanent."""
        if isinstance(error, DeliveryError):
            return error
        if isinstance(error, smtplib.SMTPRecipientsRefused):
            code, reply = next(iter(error.recipients.values()))
            return self._smtp_error(code, reply)
        if isinstance(error, smtplib.SMTPResponseException):
            drop()
            return self._smtp_error(error.smtp_code, error.smtp_error)
        if isinstance(error, OSError):  # disconnected, refused, reset, timed out
            drop()
            return TransientError(f"SMTP connection failed: {error}")
        if isinstance(error, ValueError):
            return PermanentError(str(error))
        return self.classify(error)

    def send_one(self, message: Outgoing) -> str:
        return self._send_built(message, self.build(message))

    def _send_built(
        self,
        message: Outgoing,
        email: EmailMultiAlternatives,
        *,
        meanwhile: Callable[[], None] | None = None,
        begun: bool | None = None,
    ) -> str:
        if not self.opened:
            self.open()
            begun = None
        try:
            if self._direct(message, email):
                self._smtp_send(email, meanwhile, begun=begun)
            else:
                self.connection.send_messages([email])
        except (OSError, ValueError) as error:  # SMTP's exceptions are OSErrors
            raise self._delivery_error(error, self.close) from error
        # An ESP behind django-anymail gives its own id, which its tracking events carry.
        status = getattr(email, "anymail_status", None)
        esp_id = getattr(status, "message_id", None)
        if esp_id not in (None, ""):
            return str(esp_id)
        return f"<{message.uuid}@{channel_settings.EMAIL_DOMAIN}>"

    @staticmethod
    def _smtp_error(code: int, reply: bytes | str):
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        detail = f"SMTP {code} {text}".strip()
        if 400 <= code < 500:
            return TransientError(detail)
        return PermanentError(detail)
