"""XMPP (Jabber) chat messages, through slixmpp.

The channel logs in as one account (``jid``, ``password``) and sends each message as a
``<message type="chat">`` with the subject and the text body to the recipient's ``jid``
(``address_key`` reads another recipient key). One XMPP session per batch: ``open()``
connects and authenticates, every message of the batch goes over that stream, ``close()``
ends it. slixmpp is asyncio: each session runs on a private event loop in a thread of its own,
so the backend works the same in an RQ worker, in the admin's "send test", and under a
running event loop.

After each message the backend pings its own server (an ``<iq>``, XEP-0199) and waits for
the answer. A server handles a session's stanzas in order, so by then it has routed the
message, and any error it answers for the message itself (an unknown local account, a
recipient that blocked the sender) has arrived first. The message's id (its UUID) is the
provider id. A ``sent`` message means the sender's server accepted it: errors that a
*remote* server sends back later over server-to-server links are only logged.

What the server's answers become:

- login refused (``not-authorized`` …): ``PermanentError`` with the server's condition and
  text, naming the options to check (``password``, ``jid``); no STARTTLS offered while
  ``use_tls`` asks for it, or no login method usable: ``PermanentError`` naming ``use_tls``.
- connection refused, unreachable, no answer within ``timeout``, TLS certificate not
  trusted, the stream closed or a transient stream error (``system-shutdown``,
  ``connection-timeout`` …): ``TransientError``.
- a message error of type ``wait`` (``resource-constraint``, ``remote-server-timeout`` …):
  ``TransientError``; ``item-not-found`` or ``gone`` (no such account; it moved):
  ``AddressRejected``, the address is deactivated; ``service-unavailable`` (what RFC 6121
  tells servers to answer for an unknown account, but also for a recipient who blocked the
  sender, or who is offline on a server that keeps no offline messages): ``PermanentError``,
  the message fails and the address stays active; other errors: ``PermanentError``.

``use_tls``: ``starttls`` (default: STARTTLS required, certificate verified), ``direct``
(TLS from the first byte, XEP-0368, port 5223), or ``none`` (no TLS at all: for a server on
loopback or a private network, such as a test server; it needs ``host``). Without TLS the
login uses SCRAM only, which never sends the password itself; nothing logs in unencrypted
unless ``use_tls`` is ``none``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from slixmpp import JID, ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.jid import InvalidJID

from channels.backends.base import (
    AddressRejected,
    BaseBackend,
    BaseConfigForm,
    DeliveryError,
    Outgoing,
    PermanentError,
    TransientError,
)

logger = logging.getLogger(__name__)

TLS_MODES = [
    ("starttls", "STARTTLS, required (default)"),
    ("direct", "Direct TLS (XEP-0368, port 5223)"),
    ("none", "None: unencrypted, only for a server on loopback or a private network"),
]
DEFAULT_PORTS = {"starttls": 5222, "direct": 5223, "none": 5222}
#: Stream errors worth trying again later (RFC 6120 §4.9.3); the others are configuration.
TRANSIENT_STREAM_ERRORS = {
    "connection-timeout",
    "internal-server-error",
    "remote-connection-failed",
    "reset",
    "resource-constraint",
    "see-other-host",
    "system-shutdown",
    "undefined-condition",
}
#: Message errors meaning the address is dead: no such account, or it moved for good.
DEAD_ADDRESS = {"item-not-found", "gone"}
PING_NS = "urn:xmpp:ping"


def parse_jid(value: str, *, what: str) -> JID:
    """A JID of the form ``user@domain`` (a ``/resource`` allowed); ValidationError if not."""
    try:
        jid = JID(value)
    except InvalidJID as error:
        raise ValidationError(f"{value!r} is not a valid {what} ({error})") from None
    if not jid.user or not jid.domain:
        raise ValidationError(f"{value!r} is not a valid {what}: it must look like user@domain")
    return jid


class XmppConfigForm(BaseConfigForm):
    jid = forms.CharField(help_text="The sending account, e.g. notifications@example.org.")
    password = forms.CharField(help_text="The sending account's password.")
    host = forms.CharField(
        required=False,
        help_text="The server to connect to (default: found by DNS from the jid's domain).",
    )
    port = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=65535,
        help_text="The server's client port (default 5222; 5223 with direct TLS).",
    )
    use_tls = forms.ChoiceField(
        required=False,
        choices=[("", "STARTTLS, required (default)"), *TLS_MODES],
        help_text="How the connection is encrypted. 'none' is for a server on loopback or a "
        "private network (tests) and needs host.",
    )
    timeout = forms.FloatField(
        required=False,
        min_value=0.1,
        max_value=120,
        help_text="Seconds to wait for the server (connecting, logging in, each message); "
        "default 10.",
    )
    address_key = forms.CharField(
        required=False, help_text="Recipient key to read the address from (default: jid)."
    )

    secret_fields = ("password",)

    def clean_jid(self) -> str:
        return str(parse_jid(self.cleaned_data["jid"].strip(), what="XMPP account (jid)"))

    def clean_host(self) -> str:
        return self.cleaned_data["host"].strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("use_tls") == "none" and not cleaned.get("host"):
            self.add_error(
                "host",
                "use_tls 'none' sends everything unencrypted: name the server (on loopback or "
                "a private network) in host",
            )
        return cleaned


class _Session:
    """One logged-in XMPP stream on a private event loop running in its own thread."""

    def __init__(self, backend: XmppBackend):
        self.backend = backend
        self.timeout = backend.timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="xmpp-channel", daemon=True
        )
        self.thread.start()
        self.client: ClientXMPP | None = None
        self.in_flight = ""  # the id of the message being sent
        self.bounce: Any = None  # the error the server answered for it

    # --- running coroutines on the session's loop from the calling thread -----------------
    def run(self, coro: Coroutine, *, doing: str) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(self.timeout + 1)
        except (TimeoutError, FutureTimeout):
            future.cancel()
            raise TransientError(
                f"XMPP: no answer from {self.backend.server_name} within {self.timeout:g}s "
                f"({doing})"
            ) from None

    def stop(self, *, polite: bool = True) -> None:
        """Disconnect (politely: closing the stream, within the timeout; else dropping the
        connection), then stop and close the loop."""
        try:
            if self.client is not None:
                self.run(self._disconnect(polite), doing="closing the stream")
        except DeliveryError:
            pass
        finally:
            asyncio.run_coroutine_threadsafe(self._cancel_tasks(), self.loop).result(5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()
            self.client = None

    async def _disconnect(self, polite: bool) -> None:
        client = self.client
        if client is None:
            return
        client.cancel_connection_attempt()
        if not polite:
            client.abort()
        elif client.is_connected():
            await client.disconnect(wait=self.timeout)

    async def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- logging in ------------------------------------------------------------------------
    def connect(self) -> None:
        self.run(asyncio.wait_for(self._connect(), self.timeout), doing="logging in")

    async def _connect(self) -> None:
        backend = self.backend
        options = backend.options
        mode = backend.tls_mode
        loop = asyncio.get_running_loop()
        ready: asyncio.Future = loop.create_future()
        client = ClientXMPP(
            options["jid"],
            options["password"],
            # without TLS, SCRAM only: it never sends the password itself
            plugin_config={"feature_mechanisms": {"unencrypted_scram": mode == "none"}},
            loop=loop,
        )
        self.client = client
        client.enable_starttls = mode == "starttls"
        client.enable_direct_tls = mode == "direct"
        client.enable_plaintext = mode == "none"
        client.default_port = DEFAULT_PORTS[mode]
        client.whitespace_keepalive = False

        def settle(error: DeliveryError | None) -> None:
            if not ready.done():
                if error is None:
                    ready.set_result(None)
                else:
                    ready.set_exception(error)
                    client.cancel_connection_attempt()  # slixmpp would retry forever
                    client.abort()

        no_tls = PermanentError(
            f"XMPP: {backend.server_name} offered no STARTTLS, so the login was not sent; "
            "enable TLS on the server, or set the channel's use_tls"
        )

        def failed_auth(failure) -> None:
            reason = failure["condition"] or "refused"
            if failure["text"]:
                reason += f": {failure['text']}"
            settle(
                PermanentError(
                    f"XMPP: {backend.server_name} refused the login of {options['jid']} "
                    f"({reason}); check the channel's password and jid"
                )
            )

        def no_login_method(event=None) -> None:
            if mode != "none" and not self.encrypted():
                settle(no_tls)
                return
            hint = "set the channel's use_tls" if mode == "none" else "check the server's setup"
            settle(
                PermanentError(
                    f"XMPP: {backend.server_name} offers no login method usable here; {hint}"
                )
            )

        def stream_error(error) -> None:
            condition = error["condition"] or "undefined-condition"
            text = f"XMPP: {backend.server_name} closed the stream ({condition}"
            text += f": {error['text']})" if error["text"] else ")"
            if condition == "host-unknown":
                text += f"; it does not serve {JID(options['jid']).domain} (the jid's domain)"
            transient = condition in TRANSIENT_STREAM_ERRORS
            settle(TransientError(text) if transient else PermanentError(text))

        failures: list[str] = []

        def connection_failed(error) -> None:  # one address of the server's failed
            failures.append(str(error))

        def all_addresses_failed(delay) -> None:  # slixmpp would try them all again later
            reason = "; ".join(dict.fromkeys(failures)) or "no address"
            settle(TransientError(f"XMPP: cannot connect to {backend.server_name} ({reason})"))

        def invalid_certificate(error) -> None:
            settle(
                TransientError(
                    f"XMPP: the TLS certificate of {backend.server_name} is not trusted ({error})"
                )
            )

        def disconnected(reason) -> None:
            settle(
                TransientError(
                    f"XMPP: {backend.server_name} closed the connection before the login "
                    f"completed{f' ({reason})' if reason else ''}"
                )
            )

        client.add_event_handler("session_start", lambda event: settle(None))
        client.add_event_handler("failed_auth", failed_auth)
        client.add_event_handler("failed_all_auth", no_login_method)
        client.add_event_handler("stream_error", stream_error)
        client.add_event_handler("connection_failed", connection_failed)
        client.add_event_handler("reconnect_delay", all_addresses_failed)
        client.add_event_handler("ssl_invalid_chain", invalid_certificate)
        client.add_event_handler("disconnected", disconnected)
        client.add_event_handler("message_error", self.bounced)
        client.connect(*backend.address_override())
        await ready

    def encrypted(self) -> bool:
        transport = self.client.transport if self.client else None
        return bool(transport and transport.get_extra_info("ssl_object"))

    def bounced(self, error) -> None:
        """A message error: kept for the message being sent, else (a late answer, from a
        remote server) only logged."""
        if error["id"] and error["id"] == self.in_flight:
            self.bounce = error
            return
        logger.warning(
            "XMPP: message %s to %s was answered late with %s (%s)",
            error["id"],
            error["from"],
            error["error"]["condition"],
            error["error"]["text"] or "no text",
        )

    # --- sending ---------------------------------------------------------------------------
    def deliver(self, message: Outgoing) -> str:
        return self.run(
            asyncio.wait_for(self._deliver(message), self.timeout), doing="sending a message"
        )

    async def _deliver(self, message: Outgoing) -> str:
        client = self.client
        if client is None or not client.is_connected():
            raise TransientError(f"XMPP: the connection to {self.backend.server_name} was lost")
        stanza = client.make_message(
            mto=message.address,
            mbody=message.text or message.subject,
            msubject=message.subject or None,
            mtype="chat",
        )
        stanza["id"] = self.in_flight = message.uuid
        self.bounce = None
        stanza.send()
        ping = client.make_iq_get(ito=JID(client.boundjid.domain))
        ping.append(ET.Element(f"{{{PING_NS}}}ping"))
        try:
            await ping.send(timeout=self.timeout)
        except IqError:
            pass  # a server without XEP-0199 answers an error: an answer all the same
        except IqTimeout:
            raise TransientError(
                f"XMPP: no answer from {self.backend.server_name} within {self.timeout:g}s "
                "(sending a message)"
            ) from None
        if self.bounce is not None:
            raise message_error(self.bounce, message.address)
        return message.uuid


def message_error(stanza, address: str) -> DeliveryError:
    """What a ``<message type="error">`` answered for one of ours means."""
    error = stanza["error"]
    condition = error["condition"] or "undefined-condition"
    detail = f"XMPP {error['type'] or 'cancel'}/{condition}"
    if error["text"]:
        detail += f": {error['text']}"
    if condition == "service-unavailable":
        detail += f" ({address} does not exist, blocked the sender, or cannot take messages)"
    if error["type"] == "wait":
        return TransientError(detail)
    if condition in DEAD_ADDRESS:
        return AddressRejected(detail)
    return PermanentError(detail)


class XmppBackend(BaseBackend):
    key = "xmpp"
    verbose_name = "XMPP (Jabber)"
    address_key = "jid"
    template_fields = ("subject", "text")
    ConfigForm = XmppConfigForm
    category = "chat"
    default_timeout = 10.0

    session: _Session | None = None
    #: Why this batch's session could not be opened: every message of the batch gets it.
    open_error: DeliveryError | None = None

    @property
    def timeout(self) -> float:
        return float(self.options.get("timeout") or self.default_timeout)

    @property
    def tls_mode(self) -> str:
        return self.options.get("use_tls") or "starttls"

    def address_override(self) -> tuple[str | None, int | None]:
        """``(host, port)`` to connect to, or ``(None, None)`` to look the jid's domain up."""
        host, port = self.options.get("host"), self.options.get("port")
        if not host and not port:
            return None, None
        return host or JID(self.options["jid"]).domain, port or DEFAULT_PORTS[self.tls_mode]

    @property
    def server_name(self) -> str:
        host, port = self.address_override()
        return f"{host}:{port}" if host else JID(self.options["jid"]).domain

    def validate_address(self, address: str) -> None:
        parse_jid(address, what="XMPP address (jid)")

    def open(self) -> None:
        """Connect and log in. A failure is kept, not raised: each message of the batch then
        fails with it, transient or permanent as it is."""
        if self.session is not None or self.open_error is not None:
            return
        session = _Session(self)
        try:
            session.connect()
        except DeliveryError as error:
            session.stop(polite=False)
            self.open_error = error
        except BaseException:
            session.stop(polite=False)
            raise
        else:
            self.session = session

    def close(self) -> None:
        session, self.session, self.open_error = self.session, None, None
        if session is not None:
            session.stop()

    def send_one(self, message: Outgoing) -> str:
        if self.session is None:
            self.open()
        if self.open_error is not None:
            raise self.open_error
        return self.session.deliver(message)

    def classify(self, error: Exception) -> DeliveryError:
        if isinstance(error, ssl.SSLError):
            return TransientError(f"XMPP: TLS failed ({error})")
        return super().classify(error)
