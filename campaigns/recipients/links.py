"""Signed links for people who get notifications: one-click unsubscribe (RFC 8058) and the
preference centre without a login.

A link carries what it acts on, signed (``django.core.signing.TimestampSigner`` with a salt
of its own) and time-limited, so nothing is looked up to build it and a tampered or expired
link changes nothing:

- unsubscribe: ``{"a": address, "e": event key, "c": channel key, "u": user id or None}``;
- preferences: ``{"u": user id}``, or ``{"a": address, "c": channel key}`` for a recipient
  without a user;
- mark as read: ``{"m": message uuid}`` (the message, and its user's inbox items written with
  it). Its GET only asks; a POST marks (mail scanners follow links with GET).

Settings: ``app_settings.LINK_MAX_AGE`` (seconds a link stays valid, default 90 days);
``SITE_URL`` makes the links absolute. The ``List-Unsubscribe`` headers are the email
backend's (``channels.backends.email.list_unsubscribe_headers``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
import zlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import NoReverseMatch, reverse
from django.utils.encoding import force_bytes

from campaigns.conf import app_settings
from campaigns.models import Event, Message, OptOut
from campaigns.models.events import UnsubscribeScope
from campaigns.models.optouts import PERSON_KINDS
from campaigns.recipients.optouts import channel_kind
from channels.models import ChannelConfig

UNSUBSCRIBE_SALT = "notifier.unsubscribe"
PREFERENCES_SALT = "notifier.preferences"
READ_SALT = "notifier.read"
#: ``signing.JSONSerializer``'s encoding.
_JSON = json.dumps


class InvalidLink(Exception):
    """A link was tampered with, is malformed, or has expired."""


def link_max_age() -> int:
    return app_settings.LINK_MAX_AGE


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def _sign(payload: dict[str, Any], salt: str) -> str:
    """What ``signing.TimestampSigner(salt=salt).sign_object(payload, compress=True)`` gives,
    read back by its ``unsign_object``, at a fifth of the cost (a batch signs a link or more
    per message: it was a third of rendering one): the HMAC key is derived once per salt and
    secret key, and the payload (a few dozen octets) is compressed with a small window and
    memory level rather than zlib's defaults, whose setup alone took 70 µs. Uncompressed (the
    usual case), the token is Django's to the byte."""
    data = _JSON(payload, separators=(",", ":")).encode("latin-1")
    prefix = ""
    packer = zlib.compressobj(6, zlib.DEFLATED, 9, 1)  # a 512-octet window
    compressed = packer.compress(data) + packer.flush()
    if len(compressed) < len(data) - 1:
        data, prefix = compressed, "."
    value = f"{prefix}{signing.b64_encode(data).decode()}:{signing.b62_encode(int(time.time()))}"
    mac = _mac_for(salt, settings.SECRET_KEY).copy()
    mac.update(value.encode())
    return f"{value}:{signing.b64_encode(mac.digest()).decode()}"


@functools.lru_cache(maxsize=16)
def _mac_for(salt: str, secret: str | bytes) -> hmac.HMAC:
    """What ``signing.base64_hmac(salt + "signer", ..., secret, algorithm="sha256")`` keys
    its HMAC with (``salted_hmac``: SHA-256 of the key salt and the secret), ready to copy."""
    key = hashlib.sha256(f"{salt}signer".encode() + force_bytes(secret)).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def _unsign(token: str, salt: str) -> dict[str, Any]:
    try:
        payload = signing.TimestampSigner(salt=salt).unsign_object(token, max_age=link_max_age())
    except signing.SignatureExpired:
        raise InvalidLink("This link has expired.") from None
    except (signing.BadSignature, ValueError, UnicodeDecodeError):
        raise InvalidLink("This link is not valid: it may have been cut or changed.") from None
    if not isinstance(payload, dict):
        raise InvalidLink("This link is not valid.")
    return payload


# --- building links -----------------------------------------------------------------------


def unsubscribe_token(*, address: str, event_key: str, channel_key: str, user_id: Any) -> str:
    user_id = int(user_id) if str(user_id or "").isdigit() else None
    payload = {"a": address, "e": event_key, "c": channel_key, "u": user_id}
    return _sign(payload, UNSUBSCRIBE_SALT)


def unsubscribe_url(*, address: str, event_key: str, channel_key: str, user_id: Any) -> str:
    token = unsubscribe_token(
        address=address, event_key=event_key, channel_key=channel_key, user_id=user_id
    )
    return absolute(reverse("notifier:unsubscribe", args=[token]))


def preferences_token(*, user_id: Any = None, address: str = "", channel_key: str = "") -> str:
    if str(user_id or "").isdigit():
        return _sign({"u": int(user_id)}, PREFERENCES_SALT)
    return _sign({"a": address, "c": channel_key}, PREFERENCES_SALT)


def preferences_url(*, user_id: Any = None, address: str = "", channel_key: str = "") -> str:
    token = preferences_token(user_id=user_id, address=address, channel_key=channel_key)
    return absolute(reverse("notifier:preferences-link", args=[token]))


def mark_read_token(*, message_uuid: Any) -> str:
    return _sign({"m": str(message_uuid)}, READ_SALT)


def mark_read_url(*, message_uuid: Any) -> str:
    return absolute(
        reverse("notifier:mark-read", args=[mark_read_token(message_uuid=message_uuid)])
    )


LINK_NAMES = ("unsubscribe_url", "preferences_url", "mark_read_url")
_PLACEHOLDER = "notifier-token-placeholder"


def link_prefixes() -> dict[str, str] | None:
    """Each link's absolute URL around a placeholder token, reversed once per batch (a
    ``reverse()`` per message costs more than the rest of its links); None when the site
    does not include ``campaigns.urls``."""
    try:
        return {
            "unsubscribe_url": absolute(reverse("notifier:unsubscribe", args=[_PLACEHOLDER])),
            "preferences_url": absolute(reverse("notifier:preferences-link", args=[_PLACEHOLDER])),
            "mark_read_url": absolute(reverse("notifier:mark-read", args=[_PLACEHOLDER])),
        }
    except NoReverseMatch:
        return None


def message_links(
    message: Message,
    *,
    prefixes: dict[str, str] | bool | None = True,
    wanted: tuple[str, ...] = LINK_NAMES,
) -> dict[str, str]:
    """``unsubscribe_url``, ``preferences_url`` and ``mark_read_url`` for a message's
    templates (no query: the message's event and channel are loaded with it). Only the
    ``wanted`` ones are signed; the others, and all when the site does not include
    ``campaigns.urls``, are empty.
    ``prefixes`` is what ``link_prefixes()`` gave for the batch."""
    if prefixes is True:
        prefixes = link_prefixes()
    links = dict.fromkeys(LINK_NAMES, "")
    if not prefixes:
        return links
    user_id = message.user_id or (message.recipient or {}).get("user_id")
    if "unsubscribe_url" in wanted:
        token = unsubscribe_token(
            address=message.address,
            event_key=message.event.key,
            channel_key=message.channel.key,
            user_id=user_id,
        )
        links["unsubscribe_url"] = prefixes["unsubscribe_url"].replace(_PLACEHOLDER, token)
    if "preferences_url" in wanted:
        token = preferences_token(
            user_id=user_id, address=message.address, channel_key=message.channel.key
        )
        links["preferences_url"] = prefixes["preferences_url"].replace(_PLACEHOLDER, token)
    if "mark_read_url" in wanted:
        token = mark_read_token(message_uuid=message.uuid)
        links["mark_read_url"] = prefixes["mark_read_url"].replace(_PLACEHOLDER, token)
    return links


def footer_add(text: str, *, message: Message, links: dict[str, str]) -> str:
    """The unsubscribe footer line of a marketing event's email text body."""
    if not message.event.marketing or not links["unsubscribe_url"]:
        return text
    if "/unsubscribe/" in text or not message.channel.backend_class.unsubscribe_headers:
        return text
    return f"{text.rstrip()}\n\n--\nUnsubscribe: {links['unsubscribe_url']}\n"


# --- reading links --------------------------------------------------------------------------


@dataclass(slots=True)
class Unsubscription:
    address: str
    user_id: int | None
    event: Event | None
    channel_key: str
    #: The events it turns off (one, or every marketing event), for the confirmation page.
    events: list[Event]
    scope: str
    preferences_url: str
    #: What the person knows the channel as ("email"), for the page.
    kind_label: str = ""


def unsubscribe_read(token: str) -> Unsubscription:
    """What an unsubscribe link would do; raises InvalidLink."""
    payload = _unsign(token, UNSUBSCRIBE_SALT)
    address, event_key = payload.get("a"), payload.get("e")
    if not isinstance(address, str) or not address or not isinstance(event_key, str):
        raise InvalidLink("This link is not valid.")
    user_id = payload.get("u") if isinstance(payload.get("u"), int) else None
    channel_key = str(payload.get("c") or "")
    event = Event.objects.filter(key=event_key).first()
    if (
        event is not None
        and event.unsubscribe_scope == UnsubscribeScope.EVENT
        and not (event.mandatory)
    ):
        scope, events = "event", [event]
    else:  # a mandatory event's link, or the event says so: every marketing event
        scope = "marketing"
        events = list(Event.objects.filter(marketing=True, mandatory=False).order_by("name"))
    channel = ChannelConfig.objects.filter(key=channel_key).first() if channel_key else None
    kind = channel_kind(channel) if channel is not None else ""
    return Unsubscription(
        kind_label=PERSON_KINDS.get(kind, "").lower().replace("sms", "SMS"),
        address=address,
        user_id=user_id,
        event=event,
        channel_key=channel_key,
        events=events,
        scope=scope,
        preferences_url=preferences_url(user_id=user_id, address=address, channel_key=channel_key),
    )


def unsubscribe_apply(token: str) -> Unsubscription:
    """Opt the link's address (and user) out of its event on its channel, or of every
    marketing event. Repeating it creates nothing more. Raises InvalidLink, changing
    nothing."""
    found = unsubscribe_read(token)
    scope: dict[str, Any] = {"channel": None, "kind": ""}
    if found.scope == "event":
        channel = ChannelConfig.objects.filter(key=found.channel_key).first()
        kind = channel_kind(channel) if channel is not None else ""
        # "Unsubscribe" from an email means by email: every email channel, as the person sees
        # it, not only the channel configuration this message went through.
        scope = {"kind": kind} if kind in PERSON_KINDS else {"channel": channel, "kind": ""}
    user_model = OptOut._meta.get_field("user").related_model
    user_id = (
        found.user_id
        if found.user_id and user_model.objects.filter(pk=found.user_id).exists()
        else None
    )
    reason = "unsubscribe link"
    if found.scope == "event":
        targets = [{"event": event, **scope, "marketing": False} for event in found.events]
    else:  # one opt-out that also covers marketing events created later
        targets = [{"event": None, "channel": None, "kind": "", "marketing": True}]
    with transaction.atomic():
        for target in targets:
            OptOut.objects.active().get_or_create(
                user_id=user_id,
                address=found.address.strip().lower(),
                **target,
                defaults={"reason": reason, "source": OptOut.Source.LINK},
            )
    return found


def preferences_subject_read(token: str) -> dict[str, Any]:
    """``{"user_id": …}`` or ``{"address": …, "channel_key": …}``; raises InvalidLink."""
    payload = _unsign(token, PREFERENCES_SALT)
    if isinstance(payload.get("u"), int):
        return {"user_id": payload["u"]}
    if isinstance(payload.get("a"), str) and payload["a"]:
        return {"address": payload["a"], "channel_key": str(payload.get("c") or "")}
    raise InvalidLink("This link is not valid.")


def mark_read_read(token: str) -> str:
    """The message uuid a "mark as read" link names; raises InvalidLink."""
    payload = _unsign(token, READ_SALT)
    if not isinstance(payload.get("m"), str) or not payload["m"]:
        raise InvalidLink("This link is not valid.")
    return payload["m"]
