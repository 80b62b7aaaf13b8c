"""The preference centre: what a person gets, in the words they know — kinds of channel
(email, SMS, push, chat, in-app), never the operators' channel configurations.

A person is a user (every channel they have an address on) or, reached through a signed
link, an address on one channel. The page offers, from the broadest to the narrowest:

- **everything** that is not required (an opt-out of everything);
- **all marketing** (an opt-out of every marketing event, as the unsubscribe link writes);
- **each kind** of channel they have (an opt-out of that kind: every channel of it);
- **each event on each kind** among the events marked user-configurable (an opt-out of that event
  on that kind). Mandatory events are shown on, with why they cannot be turned off.

Channels of the operators' categories (webhook, social, other) never appear. Turning a switch
off writes an opt-out (source "preference centre"); turning it on *revokes* the opt-outs that
held it off (they stay, with who turned them back on and when: the consent record). Opt-outs
a person cannot undo here — of one channel, after a bounce or set by an operator — show the
switch off and locked, with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from campaigns.domain.digests import CHOOSABLE, Frequency
from campaigns.models import ChannelAddress, DigestPreference, Event, OptOut
from campaigns.models.optouts import PERSON_KINDS
from campaigns.recipients.optouts import channel_kind
from channels.models import ChannelConfig

REASON = "preference centre"
#: Why a required event is always sent, when its event does not say.
REQUIRED_DEFAULT = "Required: it concerns your account, so it cannot be turned off."
logger = logging.getLogger("notifier.preferences")

Source = OptOut.Source


@dataclass(slots=True)
class KindChannels:
    """One kind of channel of a person: its channels and the address shown for it."""

    kind: str
    channels: list[ChannelConfig]
    address: str

    @property
    def label(self) -> str:
        return PERSON_KINDS[self.kind]

    @property
    def shown_address(self) -> str:
        """The address the page shows beside the kind ("" for the in-app inbox, whose
        address is the user's id)."""
        return "" if self.kind == "inbox" else self.address


@dataclass(slots=True)
class PreferenceSubject:
    """Who the preferences are for: a user, or one address on one channel."""

    user_id: int | None
    #: The channels shown, and the subject's address on each.
    channels: list[ChannelConfig]
    addresses: dict[int, str] = field(default_factory=dict)
    label: str = ""

    @property
    def kinds(self) -> list[KindChannels]:
        grouped: dict[str, KindChannels] = {}
        for channel in self.channels:
            kind = channel_kind(channel)
            entry = grouped.setdefault(kind, KindChannels(kind, [], self.addresses[channel.pk]))
            entry.channels.append(channel)
        return [grouped[kind] for kind in PERSON_KINDS if kind in grouped]

    def optouts(self) -> QuerySet[OptOut]:
        """The subject's opt-outs in force."""
        who = Q(address__in={a.lower() for a in self.addresses.values()})
        if self.user_id is not None:
            who |= Q(user_id=self.user_id)
        return OptOut.objects.active().filter(who)

    def frequencies(self, events: list[Event]) -> dict[int, str]:
        """The digest frequency the subject chose for each of ``events`` (by event id): one
        query, none when ``events`` is empty."""
        if not events:
            return {}
        who = (
            Q(user_id=self.user_id)
            if self.user_id is not None
            else Q(user__isnull=True, address=self.link_address)
        )
        return dict(
            DigestPreference.objects.filter(who, event__in=events).values_list(
                "event_id", "frequency"
            )
        )

    @property
    def link_address(self) -> str:
        """The one address of a subject reached through an address link, as opt-outs and
        digest preferences keep it."""
        return next(iter(self.addresses.values())).lower()

    def frequency_save(self, event: Event, frequency: str) -> None:
        if self.user_id is not None:
            DigestPreference.objects.update_or_create(
                user_id=self.user_id, event=event, defaults={"frequency": frequency}
            )
        else:
            DigestPreference.objects.update_or_create(
                user=None,
                address=self.link_address,
                event=event,
                defaults={"frequency": frequency},
            )

    def new_optout(self, *, by, **scope) -> OptOut:
        """An opt-out of ``scope`` for the subject: by user, or by address for a subject
        reached through an address link (the address of its one channel)."""
        address = "" if self.user_id else next(iter(self.addresses.values()))
        return OptOut.objects.create(
            user_id=self.user_id,
            address=address,
            reason=REASON,
            source=Source.PREFERENCES,
            created_by=by,
            **scope,
        )


@dataclass(slots=True)
class Switch:
    """One on/off choice of the page. ``disabled``: a broader switch holds it off (turning
    that on frees it); ``locked``: why the person cannot change it here."""

    name: str
    label: str
    on: bool
    locked: str = ""
    disabled: bool = False

    @property
    def editable(self) -> bool:
        return not (self.locked or self.disabled)


@dataclass(slots=True)
class Cell:
    event: Event
    kind: KindChannels
    switch: Switch

    @property
    def name(self) -> str:
        return self.switch.name


@dataclass(slots=True)
class Row:
    event: Event
    cells: list[Cell]
    #: Why a mandatory event is always sent ("" for the others).
    required: str = ""
    #: How often the person gets it, where the event lets them choose ("" elsewhere).
    frequency: str = ""

    @property
    def frequency_name(self) -> str:
        return f"digest-{self.event.pk}"

    @property
    def frequencies(self) -> list[tuple[str, str]]:
        return [(f.value, f.label) for f in CHOOSABLE]


@dataclass(slots=True)
class Preferences:
    subject: PreferenceSubject
    everything: Switch
    marketing: Switch | None
    kinds: list[tuple[KindChannels, Switch]]
    rows: list[Row]

    def switches(self) -> Iterable[Switch]:
        yield self.everything
        if self.marketing is not None:
            yield self.marketing
        for _, switch in self.kinds:
            yield switch
        for row in self.rows:
            for cell in row.cells:
                yield cell.switch


def _person_channels(recipient: dict) -> tuple[list[ChannelConfig], dict[int, str]]:
    """The active channels of the kinds people know on which ``recipient`` has an
    address, and that address on each."""
    channels, addresses = [], {}
    for channel in ChannelConfig.objects.filter(is_active=True).order_by("name", "key"):
        try:
            backend_class = channel.backend_class
            if not backend_class.reaches_people or backend_class.category not in PERSON_KINDS:
                continue  # the operators' channels: the site's social accounts, webhooks …
            address = channel.get_backend().address(recipient)
        except Exception:  # a misconfigured channel is the operators' problem, not this page's
            logger.warning("channel %s cannot be shown in preferences", channel.key, exc_info=True)
            continue
        if address is not None:
            channels.append(channel)
            addresses[channel.pk] = address
    return channels, addresses


def preferences_subject_for_user(user) -> PreferenceSubject:
    """A user's subject: the active channels of the kinds people know on which they have an
    address."""
    recipient = {"user_id": user.pk, "email": user.email or ""}
    for kind, address in (
        ChannelAddress.objects.filter(user=user, is_active=True)
        .order_by("is_verified", "updated_at")
        .values_list("kind", "address")
    ):
        recipient[kind] = address  # verified and newest last, so they win
    channels, addresses = _person_channels(recipient)
    return PreferenceSubject(
        user_id=user.pk,
        channels=channels,
        addresses=addresses,
        label=user.get_full_name() or user.get_username(),
    )


def preferences_subject_for_link(*, user_id=None, address: str = "", channel_key: str = ""):
    """The subject a signed preference link names; None when its user or channel is gone
    (or the channel is not one people know)."""
    if user_id is not None:
        user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
        return preferences_subject_for_user(user) if user else None
    channel = ChannelConfig.objects.filter(key=channel_key, is_active=True).first()
    if channel is None or not address or channel_kind(channel) not in PERSON_KINDS:
        return None
    return PreferenceSubject(
        user_id=None, channels=[channel], addresses={channel.pk: address}, label=address
    )


def preference_events() -> list[Event]:
    return list(
        Event.objects.filter(is_active=True)
        .filter(Q(user_configurable=True) | Q(mandatory=True))
        .order_by("-mandatory", "name")
    )


def required_reason(event: Event) -> str:
    return event.mandatory_reason or REQUIRED_DEFAULT


def _lock_reason(optouts: list[OptOut]) -> str:
    """Why a person cannot turn back on what these (channel-wide) opt-outs hold off."""
    if any(o.source == Source.BOUNCE for o in optouts):
        return "Off because messages to this address bounced. Ask us to check it."
    return "Turned off by our support team. Ask us to turn it back on."


def preferences_read(subject: PreferenceSubject) -> Preferences:
    """Every switch of the page, on or off, locked or not, and the digest frequency of the
    events that offer one: two queries (three when an event offers a frequency)."""
    events = preference_events()
    optouts = list(subject.optouts())
    broad = [o for o in optouts if o.event_id is None and o.channel_id is None]
    everything_off = any(not o.kind and not o.marketing for o in broad)
    marketing_off = any(o.marketing for o in optouts)
    everything = Switch("everything", "All notifications that are not required", not everything_off)
    marketing = None
    if any(e.marketing and not e.mandatory for e in events) or marketing_off:
        marketing = Switch(
            "marketing",
            "News and offers (marketing)",
            not marketing_off,
            disabled=everything_off,
        )
    kinds = []
    kind_off: dict[str, bool] = {}
    for kind in subject.kinds:
        wide = [o for o in broad if o.kind == kind.kind and not o.marketing]
        channel_wide = [o for o in optouts if o.event_id is None and o.channel_id is not None]
        held = [o for o in channel_wide if o.channel_id in {c.pk for c in kind.channels}]
        all_held = {c.pk for c in kind.channels} <= {o.channel_id for o in held}
        kind_off[kind.kind] = bool(wide) or all_held
        kinds.append(
            (
                kind,
                Switch(
                    f"kind-{kind.kind}",
                    kind.label,
                    on=not kind_off[kind.kind],
                    locked=_lock_reason(held) if all_held and not wide else "",
                    disabled=everything_off,
                ),
            )
        )
    chosen = subject.frequencies([e for e in events if e.digest_choice])
    rows = []
    for event in events:
        cells = []
        for kind in subject.kinds:
            name = f"pref-{event.pk}-{kind.kind}"
            if event.mandatory:
                switch = Switch(name, kind.label, on=True, locked=required_reason(event))
            elif everything_off or kind_off[kind.kind] or (event.marketing and marketing_off):
                switch = Switch(name, kind.label, on=False, disabled=True)
            else:
                pks = {c.pk for c in kind.channels}
                # Event-specific opt-outs only: the broader ones are the switches above (a
                # channel-wide one that leaves another channel of the kind is not the
                # person's choice of this event).
                matching = [
                    o
                    for o in optouts
                    if o.event_id == event.pk
                    and not o.marketing
                    and (o.channel_id in pks or (not o.channel_id and o.kind in ("", kind.kind)))
                ]
                switch = Switch(name, kind.label, on=not matching)
            cells.append(Cell(event, kind, switch))
        frequency = ""
        if event.digest_choice:  # theirs, else the event's own (a quarter-hour one: at once)
            own = event.digest if event.digest in CHOOSABLE else Frequency.IMMEDIATELY
            frequency = chosen.get(event.pk, own)
        rows.append(Row(event, cells, required_reason(event) if event.mandatory else "", frequency))
    return Preferences(subject, everything, marketing, kinds, rows)


def _revoke(queryset: QuerySet[OptOut], *, by) -> int:
    return queryset.update(
        revoked_at=timezone.now(), revoked_by=by, revoked_source=Source.PREFERENCES
    )


def preferences_save(
    *,
    subject: PreferenceSubject,
    on: Iterable[str],
    by=None,
    frequencies: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Save the page: ``on`` holds the names of the switches wanted on (as a form posts its
    checked boxes: ``everything``, ``marketing``, ``kind-<kind>``, ``pref-<event>-<kind>``);
    ``frequencies`` the digest frequency chosen for each event that offers one
    (``digest-<event>``: immediately, hourly or daily; others are ignored).
    Switches the person could not change (locked, or held off by a broader one when the page
    was shown) and unknown names are ignored. ``by``: the signed-in user who saves (None
    through a signed link). Returns how many opt-outs were created and revoked."""
    wanted = set(on)
    created = revoked = 0
    with transaction.atomic():
        page = preferences_read(subject)
        mine = subject.optouts()
        if page.everything.on and "everything" not in wanted:
            subject.new_optout(by=by)
            created += 1
        elif not page.everything.on and "everything" in wanted:
            revoked += _revoke(
                mine.filter(event=None, channel=None, kind="", marketing=False), by=by
            )
        if page.marketing is not None and page.marketing.editable:
            if page.marketing.on and "marketing" not in wanted:
                subject.new_optout(by=by, marketing=True)
                created += 1
            elif not page.marketing.on and "marketing" in wanted:
                revoked += _revoke(mine.filter(marketing=True), by=by)
        for kind, switch in page.kinds:
            if not switch.editable or switch.on == (switch.name in wanted):
                continue
            if switch.on:
                subject.new_optout(by=by, kind=kind.kind)
                created += 1
            else:
                revoked += _revoke(mine.filter(event=None, kind=kind.kind, marketing=False), by=by)
        for row in page.rows:
            wanted_frequency = (frequencies or {}).get(row.frequency_name)
            if (
                row.frequency
                and wanted_frequency in CHOOSABLE
                and wanted_frequency != row.frequency
            ):
                subject.frequency_save(row.event, wanted_frequency)
            editable = [cell for cell in row.cells if cell.switch.editable]
            turn_on = [c for c in editable if not c.switch.on and c.name in wanted]
            turn_off = [c for c in editable if c.switch.on and c.name not in wanted]
            if turn_on:
                # An event-wide opt-out (from the admin) becomes one per kind: the kinds still
                # wanted off keep theirs.
                event_wide = mine.filter(event=row.event, channel=None, kind="")
                if event_wide.exists():
                    revoked += _revoke(event_wide, by=by)
                    turn_off += [c for c in editable if not c.switch.on and c.name not in wanted]
            for cell in turn_on:
                revoked += _revoke(
                    mine.filter(event=row.event).filter(
                        Q(kind=cell.kind.kind) | Q(channel__in=cell.kind.channels)
                    ),
                    by=by,
                )
            for cell in turn_off:
                if not mine.filter(event=row.event, kind=cell.kind.kind).exists():
                    subject.new_optout(by=by, event=row.event, kind=cell.kind.kind)
                    created += 1
    return {"created": created, "revoked": revoked}
