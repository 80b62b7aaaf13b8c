"""The XMPP backend against a real XMPP server: Debian's Prosody, started by these tests as a
process of their own (a generated config, its own data directory, a free loopback port for
client connections, no server-to-server), with accounts made by ``prosodyctl register``.

A receiving client (slixmpp) logs in as the recipient and reads what arrived: the messages
wait in Prosody's offline storage, which it hands over on the client's initial presence,
before it answers the ping that follows, so the receiver knows when it has them all."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import slixmpp

from campaigns.api import InvalidRecipient, notify
from campaigns.models import ChannelAddress, Message, MessageStatus
from channels.backends.base import ConfigurationError, PermanentError, TransientError
from channels.backends.xmpp import XmppBackend
from channels.handler import backends
from channels.models import SECRET_MASK
from channels.registry import BUILTIN_BACKENDS, backend_class

from ... import factories
from ...conftest import free_port
from ..conftest import channel_with_event, dispatch_again, notify_and_dispatch

DOMAIN = "notifier.test"
SENDER, SENDER_PASSWORD = f"notifier@{DOMAIN}", "sender-pw-1"
ANN, BOB = f"ann@{DOMAIN}", f"bob@{DOMAIN}"
PASSWORDS = {ANN: "ann-pw-1", BOB: "bob-pw-1"}
#: Every test here runs against a Prosody server process the module starts.
pytestmark = pytest.mark.slow

PROSODY = shutil.which("prosody")
PROSODYCTL = shutil.which("prosodyctl")

CONFIG = """\
-- Generated for tests/channels/backends/test_xmpp.py: one VirtualHost, clients on loopback.
run_as_root = true  -- CI runs as root; this keeps prosody and prosodyctl from switching user
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
certificates = "{dir}/certs"
log = {{ info = "{dir}/prosody.log" }}
modules_enabled = {{ "roster", "saslauth", "disco", "ping", "offline", "posix" }}
modules_disabled = {{ "s2s" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
http_ports = {{}}
https_ports = {{}}
c2s_require_encryption = false  -- loopback only, and SCRAM never sends the password
authentication = "internal_hashed"
storage = "internal"

VirtualHost "{domain}"
"""


@dataclass
class Prosody:
    port: int
    dir: Path
    process: subprocess.Popen

    @property
    def log(self) -> str:
        return (self.dir / "prosody.log").read_text()

    def logins(self, jid: str) -> int:
        """Logins of ``jid`` so far, from Prosody's log."""
        return self.log.count(f"Authenticated as {jid}\n")


def prosodyctl(config: Path, *args: str) -> None:
    result = subprocess.run(
        [PROSODYCTL, "--config", str(config), *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def prosody(tmp_path_factory) -> Iterator[Prosody]:
    if PROSODY is None or PROSODYCTL is None:
        pytest.skip("Prosody is not installed (apt-get install prosody; .ci/run installs it)")
    folder = tmp_path_factory.mktemp("prosody")
    (folder / "data").mkdir()
    (folder / "certs").mkdir()
    port = free_port()
    config = folder / "prosody.cfg.lua"
    config.write_text(CONFIG.format(dir=folder, port=port, domain=DOMAIN))
    for jid, password in [(SENDER, SENDER_PASSWORD), *PASSWORDS.items()]:
        user, host = jid.split("@")
        prosodyctl(config, "register", user, host, password)
    with open(folder / "stdout.log", "wb") as output:
        process = subprocess.Popen(
            [PROSODY, "--config", str(config), "-F"], stdout=output, stderr=subprocess.STDOUT
        )
    server = Prosody(port=port, dir=folder, process=process)
    try:
        deadline = time.monotonic() + 30
        while "Activated service 'c2s' on [127.0.0.1]" not in (
            server.log if (folder / "prosody.log").exists() else ""
        ):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "Prosody did not start:\n" + (folder / "stdout.log").read_text(errors="replace")
                )
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert not (folder / "prosody.pid").exists()  # it stopped cleanly


@dataclass
class Received:
    sender: str  # the full JID: one resource per XMPP session of the sender
    type: str
    subject: str
    body: str


def inbox(prosody: Prosody, jid: str) -> list[Received]:
    """Log in as ``jid``, take every message waiting for it, log out."""

    async def collect() -> list[Received]:
        client = slixmpp.ClientXMPP(
            jid, PASSWORDS[jid], plugin_config={"feature_mechanisms": {"unencrypted_scram": True}}
        )
        client.enable_starttls = client.enable_direct_tls = False
        client.enable_plaintext = True
        messages: list[Received] = []
        started = asyncio.get_running_loop().create_future()
        client.add_event_handler("session_start", lambda _: started.set_result(True))
        client.add_event_handler(
            "message",
            lambda m: messages.append(Received(str(m["from"]), m["type"], m["subject"], m["body"])),
        )
        client.connect("127.0.0.1", prosody.port)
        await asyncio.wait_for(started, 10)
        client.send_presence()  # the initial presence: Prosody sends the offline messages
        ping = client.make_iq_get(ito=slixmpp.JID(DOMAIN))
        ping.append(ET.Element("{urn:xmpp:ping}ping"))
        await ping.send(timeout=10)  # answered after the offline messages went out
        await client.disconnect(wait=5)
        return messages

    return asyncio.run(collect())


@pytest.fixture
def xmpp(prosody) -> Prosody:
    """The server, with the recipients' inboxes emptied."""
    for jid in PASSWORDS:
        inbox(prosody, jid)
    return prosody


def options(server: Prosody, **overrides) -> dict:
    return {
        "jid": SENDER,
        "password": SENDER_PASSWORD,
        "host": "127.0.0.1",
        "port": server.port,
        "use_tls": "none",
        "timeout": 5,
        **overrides,
    }


def xmpp_channel(server: Prosody, **overrides):
    return channel_with_event(key="xmpp", backend="xmpp", config=options(server, **overrides))


def test_send_test(xmpp):
    backend = XmppBackend(options=options(xmpp))

    provider_id = backend.send_test(ANN, subject="Test", text="It works")

    (received,) = inbox(xmpp, ANN)
    assert (received.type, received.subject, received.body) == ("chat", "Test", "It works")
    assert received.sender.startswith(f"{SENDER}/")
    assert len(provider_id) == 36  # the message id (a UUID) given to the stanza
    assert inbox(xmpp, BOB) == []


@pytest.mark.django_db(transaction=True)
def test_notify_sends_through_rq_worker_to_the_recipient(xmpp, run_worker):
    xmpp_channel(xmpp)
    user = factories.UserFactory(first_name="Ann")
    ChannelAddress.objects.create(user=user, kind="jid", address=ANN)

    notify("order-shipped", user, {"order_id": "A-7"}, channels=["xmpp"])
    assert run_worker() == 1

    message = Message.objects.get()
    assert (message.status, message.attempts, message.last_error) == (MessageStatus.SENT, 1, "")
    assert message.provider_id == str(message.uuid)
    (received,) = inbox(xmpp, ANN)
    assert received.type == "chat"
    assert received.subject == "Order A-7 shipped"
    assert received.body == "Hello Ann, order A-7 is on its way."


def test_a_batch_is_one_session_kept_open_for_the_next_batch(xmpp, db):
    channel = xmpp_channel(xmpp)
    recipients = [
        {"jid": ANN, "name": "Ann"},
        {"jid": BOB, "name": "Bob"},
        {"jid": f"{ANN}/phone", "name": "Ann's phone"},  # a full JID: same account
    ]
    logins = xmpp.logins(SENDER)

    messages = notify_and_dispatch(channel, recipients)

    assert [m.status for m in messages] == [MessageStatus.SENT] * 3
    assert xmpp.logins(SENDER) == logins + 1
    ann, bob = inbox(xmpp, ANN), inbox(xmpp, BOB)
    assert sorted(m.body for m in ann) == [
        "Hello Ann's phone, order A-7 is on its way.",
        "Hello Ann, order A-7 is on its way.",
    ]
    assert [m.body for m in bob] == ["Hello Bob, order A-7 is on its way."]
    (session,) = {m.sender for m in ann + bob}  # all from one resource: one stream

    # The next batch of the worker reuses the open session (channels.handler) …
    (again,) = notify_and_dispatch(channel, {"jid": BOB, "name": "Bob"}, order_id="A-8")
    assert again.status == MessageStatus.SENT
    assert xmpp.logins(SENDER) == logins + 1
    (later,) = inbox(xmpp, BOB)
    assert later.subject == "Order A-8 shipped" and later.sender == session
    # … until the worker closes its channels (it stops, or the session idled too long).
    backends.close_all()
    (third,) = notify_and_dispatch(channel, {"jid": BOB, "name": "Bob"}, order_id="A-9")
    assert third.status == MessageStatus.SENT
    assert xmpp.logins(SENDER) == logins + 2
    (last,) = inbox(xmpp, BOB)
    assert last.subject == "Order A-9 shipped"
    assert last.sender.startswith(f"{SENDER}/") and last.sender != session


def test_a_wrong_password_fails_with_the_servers_reason(xmpp, db):
    channel = xmpp_channel(xmpp, password="not-the-password")

    first, second = notify_and_dispatch(channel, [{"jid": ANN}, {"jid": BOB}])

    for message in (first, second):
        assert (message.status, message.attempts) == (MessageStatus.FAILED, 1)
        assert message.last_error.startswith(
            f"PermanentError: XMPP: 127.0.0.1:{xmpp.port} refused the login of {SENDER} "
            "(not-authorized: "
        )
        assert message.last_error.endswith("check the channel's password and jid")
        assert "not-the-password" not in message.last_error
    assert inbox(xmpp, ANN) == inbox(xmpp, BOB) == []


def test_an_unknown_recipient_fails_and_keeps_the_address(xmpp, db):
    channel = xmpp_channel(xmpp)
    user = factories.UserFactory()
    ChannelAddress.objects.create(user=user, kind="jid", address=f"nobody@{DOMAIN}")

    unknown, known = notify_and_dispatch(channel, [user, {"jid": BOB, "name": "Bob"}])

    assert unknown.status == MessageStatus.FAILED
    assert unknown.last_error == (
        "PermanentError: XMPP cancel/service-unavailable "
        f"(nobody@{DOMAIN} does not exist, blocked the sender, or cannot take messages)"
    )
    assert ChannelAddress.objects.get().is_active  # ambiguous: not a reason to deactivate
    assert known.status == MessageStatus.SENT  # the session goes on after the error
    assert [m.body for m in inbox(xmpp, BOB)] == ["Hello Bob, order A-7 is on its way."]


def test_a_server_that_is_down_is_retried(xmpp, db):
    down = free_port()  # nothing listens there
    with pytest.raises(TransientError, match=f"cannot connect to 127.0.0.1:{down}"):
        XmppBackend(options=options(xmpp, port=down)).send_test(ANN, text="Hi")
    channel = xmpp_channel(xmpp, port=down)

    (message,) = notify_and_dispatch(channel, {"jid": ANN})

    assert (message.status, message.attempts) == (MessageStatus.RETRYING, 1)
    assert message.last_error.startswith("TransientError: XMPP: cannot connect to 127.0.0.1:")
    assert "Connect call failed" in message.last_error

    channel.config = options(xmpp)  # the server is back
    channel.save(update_fields=["config"])
    (message,) = dispatch_again([message])
    assert (message.status, message.attempts) == (MessageStatus.SENT, 2)
    assert [m.subject for m in inbox(xmpp, ANN)] == ["Order A-7 shipped"]


def test_a_server_that_does_not_answer_times_out(db):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never speaks XMPP
        port = silent.getsockname()[1]
        channel = channel_with_event(
            key="xmpp",
            backend="xmpp",
            config={
                "jid": SENDER,
                "password": "x",
                "host": "127.0.0.1",
                "port": port,
                "use_tls": "none",
                "timeout": 0.5,
            },
        )
        (message,) = notify_and_dispatch(channel, {"jid": ANN})

    assert message.status == MessageStatus.RETRYING
    assert message.last_error == (
        f"TransientError: XMPP: no answer from 127.0.0.1:{port} within 0.5s (logging in)"
    )


def test_starttls_required_but_not_offered_is_refused(xmpp):
    backend = XmppBackend(options=options(xmpp, use_tls="starttls"))

    with pytest.raises(PermanentError) as error:
        backend.send_test(ANN, text="Hi")

    assert str(error.value) == (
        f"XMPP: 127.0.0.1:{xmpp.port} offered no STARTTLS, so the login was not sent; "
        "enable TLS on the server, or set the channel's use_tls"
    )
    assert inbox(xmpp, ANN) == []


def test_malformed_jids_are_refused_at_notify(xmpp, db):
    xmpp_channel(xmpp)
    for address, problem in [
        ("ann", "it must look like user@domain"),
        ("ann smith@example.org", "is not a valid XMPP address"),
        ("@example.org", "is not a valid XMPP address"),
    ]:
        with pytest.raises(InvalidRecipient, match=problem):
            notify("order-shipped", {"jid": address}, {"order_id": "1"}, channels=["xmpp"])
    assert not Message.objects.exists()


def test_options_are_validated_and_the_password_masked(db):
    good = {"jid": SENDER, "password": SENDER_PASSWORD}
    assert XmppBackend(options=good).tls_mode == "starttls"
    with pytest.raises(ConfigurationError, match=r"jid: 'notifier' is not a valid XMPP account"):
        XmppBackend(options={**good, "jid": "notifier"})
    with pytest.raises(ConfigurationError, match="password: This field is required"):
        XmppBackend(options={"jid": SENDER})
    with pytest.raises(ConfigurationError, match="use_tls: Select a valid choice"):
        XmppBackend(options={**good, "use_tls": "ssl"})
    with pytest.raises(ConfigurationError, match="host: use_tls 'none' sends everything"):
        XmppBackend(options={**good, "use_tls": "none"})
    with pytest.raises(ConfigurationError, match="port: Ensure this value is less than"):
        XmppBackend(options={**good, "host": "xmpp.example.org", "port": 70000})
    with pytest.raises(ConfigurationError, match="unknown option"):
        XmppBackend(options={**good, "server": "xmpp.example.org"})
    direct = XmppBackend(options={**good, "host": "xmpp.example.org", "use_tls": "direct"})
    assert direct.address_override() == ("xmpp.example.org", 5223)
    assert XmppBackend(options={**good, "port": 5299}).address_override() == (DOMAIN, 5299)
    assert XmppBackend(options=good).address_override() == (None, None)

    assert BUILTIN_BACKENDS["xmpp"] == backend_class("xmpp").dotted_path()
    assert XmppBackend.secret_fields() == ("password",)
    channel = factories.ChannelFactory(key="jabber", backend="xmpp", config=good)
    channel.full_clean()
    assert channel.masked_config() == {"jid": SENDER, "password": SECRET_MASK}
    assert SENDER_PASSWORD not in json.dumps(channel.masked_config())
