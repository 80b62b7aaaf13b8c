"""The email backend's send loop against a real SMTP server: while the server reads one
message, the next is taken from the caller (who renders it then) and built, and its envelope
goes (over another connection, or over the same one once the reply is in); the result is
handed to the caller, who journals it while the server answers. Nothing of the next message
is committed (no content) before the caller takes up the loop again."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from aiosmtpd.controller import Controller

from campaigns.bench.smtp_sink import PipeliningOffer
from channels.backends.base import Outgoing
from channels.backends.email import EmailBackend, _Ahead
from tests.conftest import free_port


class Recording(PipeliningOffer):
    """Writes down, with the test's own events, each MAIL FROM; holds each message's final
    reply until the test says the next message was taken (or 5 s pass)."""

    def __init__(self, events: list, taken: dict[int, threading.Event], pipelining: bool):
        self.pipelining = pipelining
        self.events = events
        self.taken = taken
        self.count = 0
        self.mails = 0
        self.seen: list[tuple[str, int | str]] = []  # every command, as it arrives
        self.refuse_mail: set[int] = set()  # the n-th MAIL FROM is answered 451
        self.refuse_rcpt: dict[str, str] = {}  # these recipients get these replies
        self.refuse_data: set[str] = set()  # these recipients' contents are answered 554
        self.peers: dict[str, object] = {}

    async def handle_MAIL(self, server, session, envelope, address, options):
        self.mails += 1
        self.events.append(("MAIL", address))
        self.seen.append(("MAIL", self.mails))
        if self.mails in self.refuse_mail:
            return "451 4.3.0 try again later"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        self.seen.append(("RCPT", address))
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        self.peers[address] = session.peer  # which connection the message came over
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        self.seen.append(("DATA", envelope.rcpt_tos[0]))
        if envelope.rcpt_tos[0] in self.refuse_data:
            return "554 5.7.1 rejected as spam"
        following = self.taken.get(self.count + 1)
        if following is not None:
            deadline = time.monotonic() + 5
            while not following.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            self.events.append(("reply", self.count, following.is_set()))
        return "250 queued"


@pytest.fixture(params=[False, True], ids=["one command a time", "pipelining"])
def server(request):
    """A server without PIPELINING (each command waits for its reply) or with it (a message's
    MAIL FROM, RCPT TO and DATA go in one write)."""
    events: list = []
    taken = {n: threading.Event() for n in (1, 2, 3)}
    port = free_port()
    handler = Recording(events, taken, pipelining=request.param)
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, events, taken, handler
    controller.stop()


def outgoing(n: int) -> Outgoing:
    return Outgoing(id=n, uuid=f"uuid-{n}", address=f"p{n}@example.com", subject=f"S{n}", text="T")


def backend(port: int, connections: int = 2) -> EmailBackend:
    return EmailBackend(
        channel_key="mail",
        options={
            "host": "127.0.0.1",
            "port": port,
            "from_email": "shop@example.com",
            "connections": connections,
            "timeout": 10,  # longer than a reply held for the test (5 s)
        },
    )


#: One connection (each message's transaction begun while the caller journals the last), two
#: (a message's envelope over one while the server reads the message before it on the other)
#: or four, the default (three envelopes on their way while the server reads a message).
CONNECTIONS = pytest.mark.parametrize(
    "connections", [1, 2, 4], ids=["1 connection", "2 connections", "4 connections"]
)


def until(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


@CONNECTIONS
def test_the_next_message_is_taken_while_the_server_reads_and_begun_while_the_caller_journals(
    server, connections
):
    port, events, taken, handler = server

    def messages():
        for n in (1, 2, 3):
            events.append(("taken", n))
            taken[n].set()
            yield outgoing(n)

    mailer = backend(port, connections)
    at_results = []
    try:
        for result in mailer.send(messages()):
            assert result.ok, result.error
            n = result.outgoing.id
            # What the server has of the next message while the caller holds this result:
            # its transaction begun (written before the result was handed over), and not its
            # content, which goes only once the caller takes the loop up again.
            begun = until(lambda n=n: ("MAIL", n + 1) in handler.seen) if n < 3 else None
            committed = ("DATA", f"p{n + 1}@example.com") in handler.seen
            at_results.append((n, begun, committed))
            events.append(("result", n))
    finally:
        mailer.close()
    assert at_results == [(1, True, False), (2, True, False), (3, None, False)]
    # Each message is taken while the server reads the one before (its reply waited for
    # that); over several connections, earlier still: while the envelopes before it go.
    taken_ahead = {
        1: [("taken", 1), ("taken", 2), ("reply", 1, True), ("result", 1), ("taken", 3)],
        2: [("taken", 1), ("taken", 2), ("reply", 1, True), ("taken", 3), ("result", 1)],
        4: [("taken", 1), ("taken", 2), ("taken", 3), ("reply", 1, True), ("result", 1)],
    }[connections]
    assert [e for e in events if e[0] != "MAIL"] == [
        *taken_ahead,
        ("reply", 2, True),
        ("result", 2),
        ("result", 3),
    ]
    if connections == 4:  # three envelopes on their way at once: message 3's too
        assert ("MAIL", "shop@example.com") in events[: events.index(("result", 1))][2:]
    assert [c for c in handler.seen if c[0] == "DATA"] == [
        ("DATA", "p1@example.com"),
        ("DATA", "p2@example.com"),
        ("DATA", "p3@example.com"),
    ]
    peers = [handler.peers[f"p{n}@example.com"] for n in (1, 2, 3)]
    if connections == 1:
        assert peers[0] == peers[1] == peers[2]
    elif connections == 2:  # each message over the connection the message before it did not use
        assert peers[0] != peers[1] and peers[2] == peers[0]
    else:  # a connection each
        assert len(set(peers)) == 3


@CONNECTIONS
def test_a_caller_that_stops_with_the_next_messages_begun_leaves_them_unsent(server, connections):
    port, _, taken, handler = server
    for event in taken.values():
        event.set()
    mailer = backend(port, connections)
    try:
        loop = mailer.send(outgoing(n) for n in (1, 2, 3, 4))
        first = next(loop)
        begun = connections  # over four connections, three envelopes are on their way
        assert first.ok and until(lambda: ("MAIL", begun) in handler.seen)
        loop.close()  # the caller gives up: those transactions are begun, never finished
        # The next batch on the same backend, over every connection, sends as usual.
        later = list(mailer.send(outgoing(n) for n in (5, 6, 7, 8)))
    finally:
        mailer.close()
    assert [(r.outgoing.id, r.error) for r in later] == [(n, None) for n in (5, 6, 7, 8)]
    assert [c[1] for c in handler.seen if c[0] == "DATA"] == [
        f"p{n}@example.com" for n in (1, 5, 6, 7, 8)
    ]


@CONNECTIONS
def test_a_refused_mail_from_written_ahead_fails_only_its_message(server, connections):
    port, _, taken, handler = server
    handler.refuse_mail = {2}
    for event in taken.values():
        event.set()
    mailer = backend(port, connections)
    try:
        results = list(mailer.send(outgoing(n) for n in (1, 2, 3)))
    finally:
        mailer.close()
    assert [(r.outgoing.id, type(r.error).__name__) for r in results] == [
        (1, "NoneType"),
        (2, "TransientError"),
        (3, "NoneType"),
    ]
    assert "451 4.3.0 try again later" in str(results[1].error)
    # Message 2 went no further than its refused MAIL FROM; over four connections message
    # 3's envelope may go before message 1 is delivered.
    assert [c for c in handler.seen if c[0] == "RCPT"] == [
        ("RCPT", "p1@example.com"),
        ("RCPT", "p3@example.com"),
    ]
    assert [c for c in handler.seen if c[0] == "DATA"] == [
        ("DATA", "p1@example.com"),
        ("DATA", "p3@example.com"),
    ]


@CONNECTIONS
@pytest.mark.parametrize(
    ("rcpt_reply", "error"),
    [("550 5.1.1 no such mailbox", "PermanentError"), ("421 4.3.2 closing", "TransientError")],
    ids=["550", "421"],
)
def test_refusals_among_envelopes_on_their_way_fail_only_their_own_messages(
    server, connections, rcpt_reply, error
):
    """A refused recipient (its envelope on its way while the message before it is read; a
    421 closes that connection, which the next message on it opens again) and a refused
    content each fail their own message, in order; the others go through."""
    port, _, taken, handler = server
    handler.refuse_rcpt = {"p2@example.com": rcpt_reply}
    handler.refuse_data = {"p3@example.com"}
    for event in taken.values():
        event.set()
    mailer = backend(port, connections)
    try:
        results = list(mailer.send(outgoing(n) for n in (1, 2, 3, 4, 5)))
        again = list(mailer.send([outgoing(6)]))
    finally:
        mailer.close()
    assert [(r.outgoing.id, type(r.error).__name__) for r in results + again] == [
        (1, "NoneType"),
        (2, error),
        (3, "PermanentError"),
        (4, "NoneType"),
        (5, "NoneType"),
        (6, "NoneType"),
    ]
    assert rcpt_reply in str(results[1].error)
    assert "554 5.7.1 rejected as spam" in str(results[2].error)
    assert [c[1] for c in handler.seen if c[0] == "DATA"] == [
        f"p{n}@example.com" for n in (1, 3, 4, 5, 6)
    ]


@CONNECTIONS
def test_a_failing_caller_is_raised_once_the_current_result_is_out(server, connections):
    port, events, _, _ = server

    def messages():
        yield outgoing(1)
        raise RuntimeError("the caller's iterator broke")

    mailer = backend(port, connections)
    results = []
    try:
        with pytest.raises(RuntimeError, match="iterator broke"):
            for result in mailer.send(messages()):
                results.append((result.outgoing.id, result.ok))
    finally:
        mailer.close()
    assert results == [(1, True)]
    assert events.count(("MAIL", "shop@example.com")) == 1


def test_an_smtp_server_gone_fails_each_message_with_the_connection_error():
    mailer = backend(free_port())  # nothing listens there
    results = list(mailer.send(outgoing(n) for n in (1, 2)))
    assert [(r.outgoing.id, type(r.error).__name__) for r in results] == [
        (1, "TransientError"),
        (2, "TransientError"),
    ]
    assert all("SMTP connection to 127.0.0.1" in str(r.error) for r in results)


def test_a_build_that_fails_is_that_messages_failure():
    def build(message: Outgoing) -> str:
        if message.id == 2:
            raise ValueError("cannot build 2")
        return f"built {message.id}"

    ahead = _Ahead(iter([outgoing(1), outgoing(2), outgoing(3)]), build)
    seen = []
    for _ in range(3):
        ahead.take()
        seen.append((ahead.message.id, str(ahead.email)))
        ahead.clear()
    ahead.take()
    assert seen == [(1, "built 1"), (2, "cannot build 2"), (3, "built 3")]
    assert ahead.message is None and ahead.failure is None


def test_both_connections_send_their_writes_at_once(server):
    """Nagle's algorithm off on each connection: a short write that follows one the server
    has not acknowledged yet would otherwise wait for its delayed acknowledgement (40 ms)."""
    port, _, taken, handler = server
    for event in taken.values():
        event.set()
    mailer = backend(port, connections=2)
    try:
        results = list(mailer.send(outgoing(n) for n in (1, 2, 3)))
        lanes = [mailer.connection, *mailer.spares]
        delays = [
            lane.connection.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            for lane in lanes
        ]
    finally:
        mailer.close()
    assert all(r.ok for r in results)
    assert len(lanes) == 2 and all(delays), delays
    assert len(set(handler.peers.values())) == 2


def test_an_address_that_needs_quoting_goes_the_ordinary_way_in_its_turn(server):
    """A recipient Notifier's own writer does not take (here a quoted local part) is sent
    through Django's path once the message before it is delivered; the two connections go
    on after it, every result in the messages' order."""
    port, _, taken, handler = server
    for event in taken.values():
        event.set()
    quoted = Outgoing(id=2, uuid="uuid-2", address='"ann lee"@example.com', subject="S2", text="T")
    mailer = backend(port, connections=2)
    try:
        results = list(mailer.send([outgoing(1), quoted, outgoing(3), outgoing(4)]))
    finally:
        mailer.close()
    assert [(r.outgoing.id, r.ok) for r in results] == [(1, True), (2, True), (3, True), (4, True)]
    assert [c[1] for c in handler.seen if c[0] == "DATA"] == [
        "p1@example.com",
        '"ann lee"@example.com',
        "p3@example.com",
        "p4@example.com",
    ]


@CONNECTIONS
def test_connections_the_server_closed_between_batches_are_opened_again(connections):
    """Servers drop idle clients (aiosmtpd here after half a second): the next batch's
    messages go over new connections instead of failing on the dead ones."""
    handler = Recording([], {}, pipelining=False)
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, server_kwargs={"timeout": 0.5}
    )
    controller.start()
    mailer = backend(port, connections)
    try:
        first = list(mailer.send(outgoing(n) for n in (1, 2)))
        time.sleep(1.5)  # the server closes both connections meanwhile
        second = list(mailer.send(outgoing(n) for n in (3, 4)))
    finally:
        mailer.close()
        controller.stop()
    assert [(r.outgoing.id, r.error) for r in first + second] == [
        (1, None),
        (2, None),
        (3, None),
        (4, None),
    ]
    assert [c[1] for c in handler.seen if c[0] == "DATA"] == [
        f"p{n}@example.com" for n in (1, 2, 3, 4)
    ]


class ConnectionLimit(Controller):
    """aiosmtpd taking at most ``limit`` connections at once: a further one is greeted with
    421 and closed, as Postfix's ``smtpd_client_connection_count_limit`` does."""

    def __init__(self, handler, *, limit: int, **kwargs):
        super().__init__(handler, **kwargs)
        self.limit, self.open, self.refused, self.most = limit, 0, 0, 0

    def factory(self):
        controller = self
        base = super().factory()

        class Limited(type(base)):
            def connection_made(self, transport):
                if controller.open >= controller.limit:
                    controller.refused += 1
                    transport.write(b"421 4.7.0 too many connections from you\r\n")
                    transport.close()
                    return
                controller.open += 1
                controller.most = max(controller.most, controller.open)
                self.counted = True
                super().connection_made(transport)

            def connection_lost(self, error):
                if getattr(self, "counted", False):
                    controller.open -= 1
                super().connection_lost(error)

        base.__class__ = Limited
        return base


def test_a_server_that_takes_fewer_connections_gets_every_message_over_those_it_takes():
    """Four connections asked, two taken: the third is refused at its greeting, and its
    message waits for one of the two instead of failing; the next batch asks for no more."""
    handler = Recording([], {}, pipelining=False)
    port = free_port()
    controller = ConnectionLimit(handler, limit=2, hostname="127.0.0.1", port=port)
    controller.start()
    mailer = backend(port, connections=4)
    try:
        first = list(mailer.send(outgoing(n) for n in (1, 2, 3, 4, 5, 6)))
        refused = controller.refused
        second = list(mailer.send(outgoing(n) for n in (7, 8, 9)))
    finally:
        mailer.close()
        controller.stop()
    assert [(r.outgoing.id, r.error) for r in first + second] == [(n, None) for n in range(1, 10)]
    assert [c[1] for c in handler.seen if c[0] == "DATA"] == [
        f"p{n}@example.com" for n in range(1, 10)
    ]
    assert refused == 1 and controller.refused == 1  # the second batch kept to two
    assert controller.most == 2


def test_a_host_that_cannot_be_reached_is_tried_once_per_batch():
    """A host that accepts the TCP connection and never greets: the first message waits out
    the timeout, the batch's others fail at once with the same error, and the next batch
    tries again."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # connections complete in the backlog; nobody ever answers
    port = listener.getsockname()[1]
    mailer = EmailBackend(
        channel_key="mail",
        options={
            "host": "127.0.0.1",
            "port": port,
            "from_email": "shop@example.com",
            "timeout": 0.3,
        },
    )
    accepted = []
    try:
        first = list(mailer.send(outgoing(n) for n in (1, 2, 3, 4, 5)))
        listener.setblocking(False)
        while True:
            try:
                accepted.append(listener.accept()[0])
            except BlockingIOError:
                break
        tried_first = len(accepted)
        second = list(mailer.send([outgoing(6)]))
        while True:
            try:
                accepted.append(listener.accept()[0])
            except BlockingIOError:
                break
    finally:
        mailer.close()
        for connection in accepted:
            connection.close()
        listener.close()
    errors = {str(r.error) for r in first}
    assert [type(r.error).__name__ for r in first + second] == ["TransientError"] * 6
    assert len(errors) == 1 and "SMTP connection to 127.0.0.1" in errors.pop()
    assert tried_first == 1
    assert len(accepted) == 2  # the next batch tried again
