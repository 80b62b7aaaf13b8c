"""The preference centre: which user-configurable events a person gets on which channels.

A person is a user (every channel they have an address on) or, reached through a signed
link, an address on one channel. A cell of the matrix is on unless an opt-out matches it;
turning it off writes an opt-out of that event on that channel (scope ``event_channel``),
turning it on removes the opt-outs that matched it. Mandatory events are shown always on and
cannot change; cells turned off by a broader opt-out (everything, or a whole channel, set by
an operator) are shown off and locked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q

from campaigns.models import ChannelAddress, Event, OptOut
from channels.models import ChannelConfig

REASON = "preference centre"
logger = logging.getLogger("notifier.preferences")


@dataclass(slots=True)
class PreferenceSubject:
    """Who the preferences are for: a user, or one address on one channel."""

    user_id: int | None
    #: The channels shown, and the subject's address on each.
    channels: list[ChannelConfig]
    addresses: dict[int, str] = field(default_factory=dict)
    label: str = ""

    def optouts(self):
        who = Q(address__in={a.lower() for a in self.addresses.values()})
        if self.user_id is not None:
            who |= Q(user_id=self.user_id)
        return OptOut.objects.filter(who)


@dataclass(slots=True)
class Cell:
    event: Event
    channel: ChannelConfig
    on: bool
    locked: str = ""  # why it cannot change, or ""

    @property
    def name(self) -> str:
        return f"pref-{self.event.pk}-{self.channel.pk}"


@dataclass(slots=True)
class Row:
    event: Event
    cells: list[Cell]


def preferences_subject_for_user(user) -> PreferenceSubject:
    """A user's subject: the active channels on which they have an address."""
    recipient = {"user_id": user.pk, "email": user.email or ""}
    for kind, address in (
        ChannelAddress.objects.filter(user=user, is_active=True)
        .order_by("is_verified", "updated_at")
        .values_list("kind", "address")
    ):
        recipient[kind] = address  # verified and newest last, so they win
    channels, addresses = [], {}
    for channel in ChannelConfig.objects.filter(is_active=True).order_by("name", "key"):
        if not channel.backend_class.reaches_people:  # e.g. the site's social accounts
            continue
        try:
            address = channel.get_backend().address(recipient)
        except Exception:  # a misconfigured channel is the operators' problem, not this page's
            logger.warning("channel %s cannot be shown in preferences", channel.key, exc_info=True)
            continue
        if address is not None:
            channels.append(channel)
            addresses[channel.pk] = address
    return PreferenceSubject(
        user_id=user.pk,
        channels=channels,
        addresses=addresses,
        label=user.get_full_name() or user.get_username(),
    )


def preferences_subject_for_link(*, user_id=None, address: str = "", channel_key: str = ""):
    """The subject a signed preference link names; None when its user or channel is gone."""
    if user_id is not None:
        user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
        return preferences_subject_for_user(user) if user else None
    channel = ChannelConfig.objects.filter(key=channel_key, is_active=True).first()
    if channel is None or not address:
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


def preferences_matrix(subject: PreferenceSubject) -> list[Row]:
    """The matrix of events by channels, each cell on or off, locked or not: two queries."""
    events = preference_events()
    rows = list(
        subject.optouts().values_list("user_id", "address", "event_id", "channel_id", "marketing")
    )
    matrix = []
    for event in events:
        cells = []
        for channel in subject.channels:
            address = subject.addresses.get(channel.pk, "").lower()
            matching = [
                (event_id, channel_id)
                for user_id, opt_address, event_id, channel_id, marketing_only in rows
                if (user_id is not None and user_id == subject.user_id)
                or (opt_address and opt_address == address)
                if event_id in (None, event.pk)
                and channel_id in (None, channel.pk)
                and not marketing_only
            ]
            marketing_off = event.marketing and any(
                marketing_only
                and ((user_id is not None and user_id == subject.user_id) or opt_address == address)
                for user_id, opt_address, _, _, marketing_only in rows
            )
            if event.mandatory:
                cell = Cell(event, channel, on=True, locked="Always sent")
            elif marketing_off:
                cell = Cell(event, channel, on=False, locked="Turned off with all marketing")
            elif any(event_id is None for event_id, _ in matching):
                what = "everything" if any(c is None for e, c in matching if e is None) else ""
                cell = Cell(
                    event,
                    channel,
                    on=False,
                    locked=f"Turned off for {what or 'every notification on ' + channel.name}",
                )
            else:
                cell = Cell(event, channel, on=not matching)
            cells.append(cell)
        matrix.append(Row(event, cells))
    return matrix


def preferences_save(*, subject: PreferenceSubject, on: Iterable[str]) -> dict[str, int]:
    """Save the matrix: ``on`` holds the names of the cells wanted on (``pref-<event>-<channel>``,
    as a form posts its checked boxes). Locked cells and unknown names are ignored. Returns
    how many opt-outs were created and removed."""
    wanted = set(on)
    created = removed = 0
    with transaction.atomic():
        matrix = preferences_matrix(subject)
        for row in matrix:
            editable = [cell for cell in row.cells if not cell.locked]
            turn_on = [c for c in editable if not c.on and c.name in wanted]
            turn_off = [c for c in editable if c.on and c.name not in wanted]
            if turn_on:
                # An event-wide opt-out (from the admin) becomes per-channel ones: the cells
                # still wanted off keep theirs.
                event_wide = subject.optouts().filter(event=row.event, channel__isnull=True)
                if event_wide.exists():
                    removed += event_wide.delete()[0]
                    turn_off += [c for c in editable if not c.on and c.name not in wanted]
            for cell in turn_on:
                removed += (
                    subject.optouts().filter(event=row.event, channel=cell.channel).delete()[0]
                )
            for cell in turn_off:
                exists = subject.optouts().filter(event=row.event, channel=cell.channel).exists()
                if not exists:
                    OptOut.objects.create(
                        user_id=subject.user_id,
                        address="" if subject.user_id else subject.addresses[cell.channel.pk],
                        event=row.event,
                        channel=cell.channel,
                        reason=REASON,
                    )
                    created += 1
    return {"created": created, "removed": removed}
