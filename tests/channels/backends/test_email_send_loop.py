"""The email backend's send loop against a real SMTP server: while the server reads one
message, the next is taken from the caller (who renders it then) and built; its result is
still out, for the caller to journal, before the next message's MAIL FROM goes out."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiosmtpd.controller import Controller

from channels.backends.base import Outgoing
from channels.backends.email import EmailBackend, _Ahead
from tests.conftest import free_port


class Recording:
    """Writes down, with the test's own events, each MAIL FROM; holds each message's final
    reply until the test says the next message was taken (or 5 s pass)."""

    def __init__(self, events: list, taken: dict[int, threading.Event]):
        self.events = events
        self.taken = taken
        self.count = 0

    async def handle_MAIL(self, server, session, envelope, address, options):
        self.events.append(("MAIL", address))
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        following = self.taken.get(self.count + 1)
        if following is not None:
            deadline = time.monotonic() + 5
            while not following.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            self.events.append(("reply", self.count, following.is_set()))
        return "250 queued"


@pytest.fixture
def server():
    events: list = []
    taken = {n: threading.Event() for n in (1, 2, 3)}
    port = free_port()
    controller = Controller(Recording(events, taken), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, events, taken
    controller.stop()


def outgoing(n: int) -> Outgoing:
    return Outgoing(id=n, uuid=f"uuid-{n}", address=f"p{n}@example.com", subject=f"S{n}", text="T")


def backend(port: int) -> EmailBackend:
    return EmailBackend(
        channel_key="mail",
        options={"host": "127.0.0.1", "port": port, "from_email": "shop@example.com"},
    )


def test_the_next_message_is_taken_while_the_server_reads_and_sent_after_the_result(server):
    port, events, taken = server

    def messages():
        for n in (1, 2, 3):
            events.append(("taken", n))
            taken[n].set()
            yield outgoing(n)

    mailer = backend(port)
    try:
        for result in mailer.send(messages()):
            assert result.ok, result.error
            events.append(("result", result.outgoing.id))
    finally:
        mailer.close()
    assert events == [
        ("taken", 1),
        ("MAIL", "shop@example.com"),
        ("taken", 2),  # while the server read message 1: its reply waited for this
        ("reply", 1, True),
        ("result", 1),  # out before message 2's MAIL FROM
        ("MAIL", "shop@example.com"),
        ("taken", 3),
        ("reply", 2, True),
        ("result", 2),
        ("MAIL", "shop@example.com"),
        ("result", 3),
    ]


def test_a_failing_caller_is_raised_once_the_current_result_is_out(server):
    port, events, _ = server

    def messages():
        yield outgoing(1)
        raise RuntimeError("the caller's iterator broke")

    mailer = backend(port)
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
