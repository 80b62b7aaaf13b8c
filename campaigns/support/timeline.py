"""The support desk's reads: find a person, and everything that happened to them.

A *person* is a user (found by name, username, email or phone), a campaign contact, or a bare
address. Their *timeline* is every message to them on every channel (to their user, or to
any address of theirs), and every decision that stopped one — skips that ``notify()`` or a
campaign recorded (``Decision``), and cancellations (on the message row) — newest first,
beside their opt-outs (in force and revoked) and their addresses. Reads only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.urls import reverse

from campaigns.domain.states import MessageStatus
from campaigns.models import ChannelAddress, Contact, Decision, Message, OptOut
from campaigns.models.optouts import PERSON_KINDS
from campaigns.outbox.actions import CANCELLABLE, REQUEUABLE
from campaigns.recipients.optouts import channel_kind
from channels.addresses import validate_phone
from channels.models import ChannelConfig

#: How many of each (messages, decisions) a timeline shows at most.
TIMELINE_LIMIT = 200
SEARCH_LIMIT = 25

#: Message states as a badge: (label, colour word for the template).
BADGES = {
    MessageStatus.SENT: "success",
    MessageStatus.FAILED: "danger",
    MessageStatus.BROKEN: "danger",
    MessageStatus.CANCELLED: "warning",
    MessageStatus.SKIPPED: "warning",
    MessageStatus.PAUSED: "warning",
    MessageStatus.RETRYING: "warning",
}
#: Provider feedback that means trouble.
BAD_DELIVERY = {"bounced", "undelivered", "failed", "rejected", "complained"}


@dataclass(slots=True)
class Person:
    """Someone support looks up: ``kind`` is "user", "contact" or "address"."""

    kind: str
    key: str
    label: str
    detail: str = ""
    user_id: int | None = None
    addresses: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return reverse("admin:campaigns_person", args=[self.kind, self.key])


def _phone(query: str) -> str:
    try:
        return validate_phone(query)
    except ValidationError:
        return ""


def _terms(query: str, fields: tuple[str, ...]) -> Q:
    """Each word of ``query`` in one of ``fields`` (as the admin's search does)."""
    return reduce(
        lambda q, term: q & reduce(or_, (Q(**{f"{f}__icontains": term}) for f in fields)),
        query.split(),
        Q(),
    )


def user_person(user) -> Person:
    addresses = [user.email] if user.email else []
    addresses += list(
        ChannelAddress.objects.filter(user=user).order_by("kind").values_list("address", flat=True)
    )
    name = user.get_full_name()
    return Person(
        "user",
        str(user.pk),
        name or user.get_username(),
        detail=f"{user.get_username()} · {user.email}" if name else user.email,
        user_id=user.pk,
        addresses=list(dict.fromkeys(addresses)),
    )


def contact_person(contact: Contact) -> Person:
    addresses = [a for a in (contact.email, contact.phone) if a]
    return Person(
        "contact",
        str(contact.pk),
        contact.name or contact.email or contact.phone,
        detail=f"contact in {contact.audience.name} · {' · '.join(addresses)}",
        addresses=addresses,
    )


def address_person(address: str) -> Person:
    address = address.strip()
    return Person("address", address, address, detail="an address", addresses=[address])


def people_search(query: str, *, limit: int = SEARCH_LIMIT) -> list[Person]:
    """Users and contacts whose name, username, email or phone matches ``query`` (every word
    of it), then the address itself when it looks like one: a few indexed or bounded
    queries, never a scan of the messages."""
    query = " ".join(query.split())[:200]
    if not query:
        return []
    phone = _phone(query)
    users = get_user_model().objects.filter(
        _terms(query, ("username", "first_name", "last_name", "email"))
        | Q(pk__in=ChannelAddress.objects.filter(address__in={query, phone} - {""}).values("user"))
    )
    found = [user_person(u) for u in users.order_by("username")[:limit]]
    contacts = Contact.objects.select_related("audience").filter(
        _terms(query, ("name", "email")) | Q(phone__in={query, phone} - {""})
    )
    found += [contact_person(c) for c in contacts.order_by("pk")[: max(limit - len(found), 0)]]
    looks_like_address = "@" in query or phone
    if looks_like_address and not any(
        (phone or query.lower()) in (a.lower() for a in p.addresses) for p in found
    ):
        found.append(address_person(phone or query))
    return found


def person_get(kind: str, key: str) -> Person | None:
    """The person a timeline URL names; None when there is none."""
    if kind == "user":
        user = get_user_model().objects.filter(pk=key).first() if key.isdigit() else None
        return user_person(user) if user else None
    if kind == "contact":
        contact = (
            Contact.objects.select_related("audience").filter(pk=key).first()
            if key.isdigit()
            else None
        )
        return contact_person(contact) if contact else None
    if kind == "address" and key.strip():
        return address_person(key)
    return None


@dataclass(slots=True)
class Entry:
    """One line of a timeline: a message, or a decision that stopped one."""

    at: dt.datetime
    message: Message | None = None
    decision: Decision | None = None
    channel_name: str = ""
    channel_kind: str = ""
    #: A later step of an escalation: the earlier message it waited on (when on the page).
    earlier: Message | None = None

    @property
    def badge(self) -> str:
        if self.decision is not None:
            return "warning"
        return BADGES.get(self.message.status, "info")

    @property
    def delivery_bad(self) -> bool:
        return self.message is not None and self.message.delivery_status in BAD_DELIVERY

    @property
    def can_resend(self) -> bool:
        return self.message is not None and self.message.status in REQUEUABLE

    @property
    def can_cancel(self) -> bool:
        return self.message is not None and self.message.status in CANCELLABLE


@dataclass(slots=True)
class Timeline:
    person: Person
    entries: list[Entry]
    optouts: list[OptOut]
    addresses: list[ChannelAddress]
    truncated: bool = False


def _who(person: Person, *, address_field: str = "address") -> Q:
    spellings = {a for a in person.addresses} | {a.lower() for a in person.addresses}
    who = Q(**{f"{address_field}__in": spellings}) if spellings else Q(pk__in=[])
    if person.user_id is not None:
        who |= Q(user_id=person.user_id)
    return who


def person_messages(person: Person) -> QuerySet[Message]:
    return (
        Message.objects.filter(_who(person))
        .select_related("event", "channel")
        .defer("context", "html", "text", "recipient", "extra")
        .order_by("-created_at", "-id")
    )


def person_timeline(person: Person, *, limit: int = TIMELINE_LIMIT) -> Timeline:
    """The person's messages and decisions, newest first, with their opt-outs and
    addresses: five queries."""
    messages = list(person_messages(person)[: limit + 1])
    decisions = list(
        Decision.objects.filter(_who(person))
        .select_related("event")
        .order_by("-created_at", "-id")[: limit + 1]
    )
    truncated = len(messages) > limit or len(decisions) > limit
    channels = {c.key: c for c in ChannelConfig.objects.all()}
    by_id = {m.pk: m for m in messages}
    entries = [
        Entry(
            m.created_at,
            message=m,
            channel_name=m.channel.name,
            channel_kind=_kind(m.channel),
            earlier=by_id.get(m.escalates_from_id) if m.escalates_from_id else None,
        )
        for m in messages[:limit]
    ]
    for decision in decisions[:limit]:
        channel = channels.get(decision.channel)
        entries.append(
            Entry(
                decision.created_at,
                decision=decision,
                channel_name=channel.name if channel else decision.channel,
                channel_kind=_kind(channel) if channel else "",
            )
        )
    entries.sort(key=lambda e: e.at, reverse=True)
    optouts = list(
        OptOut.objects.filter(_who(person))
        .select_related("event", "channel", "created_by", "revoked_by")
        .order_by("revoked_at", "-created_at")
    )
    addresses = (
        list(ChannelAddress.objects.filter(user_id=person.user_id).order_by("kind"))
        if person.user_id
        else []
    )
    return Timeline(person, entries, optouts, addresses, truncated)


def _kind(channel: ChannelConfig) -> str:
    kind = channel_kind(channel)
    return PERSON_KINDS.get(kind, kind)
