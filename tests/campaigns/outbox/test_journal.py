"""The send journal in Redis: what a batch's records leave behind, killed or closed, and the
connection it gives back to the pool."""

from __future__ import annotations

import datetime as dt
import signal
import socket
import time

import pytest

from campaigns.outbox.journal import KEY, JournalWriter, journal_clear, journal_load

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="TCP_CORK is Linux's")

KILLED_SCRIPT = """
import os, signal, datetime as dt
from campaigns.outbox.journal import JournalWriter
journal = JournalWriter(content=False)
assert journal.corked is not None, "the journal's connection was not corked"
sent_at = dt.datetime(2026, 12, 1, 5, 0, tzinfo=dt.UTC)
for number in range({count}):
    journal.record({{"id": 9000 + number, "status": "sent", "sent_at": sent_at, "attempts": 1}})
os.kill(os.getpid(), signal.SIGKILL)  # no close(): the replies are never read
"""


@pytest.mark.slow
def test_records_of_a_worker_killed_mid_batch_reach_redis(spawn, redis_connection):
    """The records are corked in the kernel, not held by the process: SIGKILL right after
    the last ``record()`` (no ``close()``) and Redis still has every one of them."""
    count = 300
    process = spawn("shell", "-c", KILLED_SCRIPT.format(count=count))
    assert process.wait(timeout=60) == -signal.SIGKILL, process.log.read()
    deadline = time.monotonic() + 5
    while redis_connection.hlen(KEY) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert redis_connection.hlen(KEY) == count
    recorded = journal_load(range(9000, 9000 + count))
    assert sorted(recorded) == list(range(9000, 9000 + count))
    assert recorded[9299]["status"] == "sent"
    assert dt.datetime.fromisoformat(recorded[9299]["sent_at"]) == dt.datetime(
        2026, 12, 1, 5, 0, tzinfo=dt.UTC
    )


def test_a_closed_journal_gives_its_connection_back_as_it_came(redis_connection):
    """A corked connection back in the pool would hold every later command of the process
    for the kernel's 200 ms, and one with replies off would answer none: close() uncorks
    it and turns the replies on again."""
    journal = JournalWriter(content=False)
    connection = journal.connection
    corked = journal.corked
    assert journal.quiet and corked is not None
    assert corked.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 1
    for number in range(5):
        journal.record({"id": number, "status": "sent", "attempts": 1})
    journal.close()
    assert journal.connection is None and journal.corked is None
    assert corked.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 0
    assert connection._sock is corked  # still open, back in the pool
    assert redis_connection.hlen(KEY) == 5
    connection.send_command("ECHO", "still answering")  # as any pooled connection does
    assert connection.read_response() == b"still answering"
    assert connection.notifier_replies_off is True
    second = JournalWriter(content=False)  # the next batch asks no question first
    assert second.connection is connection and second.quiet
    second.record({"id": 6, "status": "sent"})
    second.close()
    assert redis_connection.hlen(KEY) == 6


@pytest.fixture
def client_commands_refused(redis_connection, monkeypatch):
    """A Redis user without CLIENT (as a proxy or a managed service may have): the journal's
    connections log in as it."""
    from redis import Redis

    from campaigns.outbox import journal

    user = "notifier-tests-no-client"
    redis_connection.acl_setuser(
        user, enabled=True, nopass=True, keys=["*"], channels=["*"], commands=["+@all", "-client"]
    )
    kwargs = redis_connection.connection_pool.connection_kwargs
    client = Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs["db"], username=user)
    monkeypatch.setattr(journal, "redis_connection", lambda: client)
    yield client
    client.close()
    redis_connection.acl_deluser(user)


def test_a_redis_without_client_reply_answers_each_record(client_commands_refused, caplog):
    """Where CLIENT REPLY is refused the records are answered one by one, read at close()
    (and the connection is not corked: an unread answer would make a killed worker's socket
    drop what is corked)."""
    journal = JournalWriter(content=False)
    assert not journal.quiet and journal.corked is None
    for number in range(1, 8):
        journal.record({"id": number, "status": "sent"})
    assert journal.pending == 7
    journal.close()
    assert journal.connection is None
    assert client_commands_refused.hlen(KEY) == 7
    assert "journal" not in caplog.text
    again = JournalWriter(content=False)  # what the connection is known to refuse is not asked
    assert not again.quiet
    again.close()


def test_records_redis_did_not_keep_are_reported_at_close(redis_connection, caplog):
    """Redis answers no record: an error it had for them (here, the key holds a string) is
    found by close(), which looks for the batch's last record, and logged naming it."""
    redis_connection.set(KEY, "not a hash")
    journal = JournalWriter(content=False)
    journal.record({"id": 41, "status": "sent"})
    journal.record({"id": 42, "status": "sent"})
    journal.close()
    assert "Redis did not keep this batch's records (the last, message 42" in caplog.text
    assert "WRONGTYPE" in caplog.text
    assert journal.connection is None
    assert redis_connection.get(KEY) == b"not a hash"


def test_the_body_is_journalled_only_with_content(redis_connection):
    journal = JournalWriter(content=False)
    journal.record({"id": 1, "status": "sent", "text": "Hello", "html": "<p>Hello</p>"})
    journal.close()
    assert journal_load([1]) == {1: {"id": 1, "status": "sent"}}


def test_a_record_redis_refuses_leaves_the_batch_going(redis_connection, caplog):
    """A write that fails (the connection closed under it) is logged; the batch goes on
    without a journal and close() has nothing left to do."""
    journal = JournalWriter(content=False)
    journal.record({"id": 1, "status": "sent"})
    journal.connection._sock.shutdown(socket.SHUT_RDWR)
    for number in range(2, 50):  # the peer's reset shows within a few writes
        journal.record({"id": number, "status": "sent"})
        if journal.connection is None:
            break
    assert journal.connection is None
    assert "journal write failed for message" in caplog.text
    journal.close()


def test_cleared_records_are_gone_and_the_others_stay(redis_connection, caplog):
    journal = JournalWriter(content=False)
    for number in range(1, 301):
        journal.record({"id": number, "status": "sent"})
    journal.close()
    journal_clear(range(1, 251))
    assert sorted(journal_load(range(1, 301))) == list(range(251, 301))
    journal_clear([])  # nothing to do
    redis_connection.set(KEY, "not a hash")
    journal_clear([260])  # refused: logged, the batch goes on
    assert "journal clear failed for 1 message(s): WRONGTYPE" in caplog.text
    assert redis_connection.ping()
