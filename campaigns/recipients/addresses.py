"""Who recipients are and where they can be reached: their users (active, name, profile),
their addresses beyond their email (``ChannelAddress``), and the addresses a provider called
dead, deactivated so the next notify() skips them. Each read is one query however many
recipients there are."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Case, Value, When
from django.utils import timezone

from campaigns.models import ChannelAddress

MAX_DEACTIVATED_REASON = ChannelAddress._meta.get_field("deactivated_reason").max_length


def addresses_deactivate(*, kind: str, dead: Mapping[str, tuple[int | None, str]]) -> None:
    """Mark addresses of one kind as inactive, ``{address: (user_id, reason)}``, creating the
    records of addresses given directly to notify(): two queries, however many addresses."""
    if not dead or kind in ("", "user_id"):  # a user id is not an address
        return
    ChannelAddress.objects.bulk_create(
        [
            ChannelAddress(kind=kind, address=address, user_id=user_id)
            for address, (user_id, _) in dead.items()
        ],
        ignore_conflicts=True,
    )
    ChannelAddress.objects.filter(kind=kind, address__in=list(dead)).update(
        is_active=False,
        deactivated_reason=Case(
            *(
                When(address=address, then=Value(reason[:MAX_DEACTIVATED_REASON]))
                for address, (_, reason) in dead.items()
            ),
            default=Value(""),
        ),
        updated_at=timezone.now(),
    )


def user_addresses_load(users: dict[int, dict[str, Any]]) -> dict[int, dict[str, str]]:
    """The active addresses of these users per kind (verified ones first), in one query."""
    if not users:
        return {}
    found: dict[int, dict[str, str]] = defaultdict(dict)
    rows = (
        ChannelAddress.objects.filter(user_id__in=users, is_active=True)
        .order_by("-is_verified", "-updated_at")
        .values_list("user_id", "kind", "address")
    )
    for user_id, kind, address in rows:
        found[user_id].setdefault(kind, address)
    return found


def inactive_addresses_split(addresses: list, kinds: Mapping[int, str | None]) -> tuple[list, list]:
    """Split ``(recipient, channel, address)`` items into those whose address is active and
    those deactivated (e.g. a provider said they are dead), ``kinds`` giving the address kind
    of each channel id: one query."""
    if not addresses:
        return addresses, []
    inactive = set(
        ChannelAddress.objects.filter(
            address__in={address for _, _, address in addresses}, is_active=False
        ).values_list("kind", "address")
    )
    if not inactive:
        return addresses, []
    kept, dead = [], []
    for item in addresses:
        _, channel, address = item
        kind = kinds[channel.pk]
        (dead if (kind, address) in inactive else kept).append(item)
    return kept, dead


@functools.cache
def _user_name_fields() -> tuple[str, ...]:
    """The user model's name columns: (first_name, last_name, USERNAME_FIELD) as it has them."""
    model = get_user_model()
    columns = {f.name for f in model._meta.concrete_fields}
    return (*(n for n in ("first_name", "last_name") if n in columns), model.USERNAME_FIELD)


def user_name(row: dict[str, Any]) -> str:
    """``get_full_name() or get_username()``, from a row of ``_users_load``."""
    *parts, username = (row[name] or "" for name in _user_name_fields())
    return " ".join(parts).strip() or str(username)


def users_load(people: list[dict[str, Any]], *, also: int | None = None) -> dict[int, dict]:
    """The recipients' users (and user ``also``) by id, in one query."""
    ids = {person["user_id"] for person in people if person.get("user_id") is not None}
    if also is not None:
        ids.add(also)
    if not ids:
        return {}
    rows = (
        get_user_model()
        .objects.filter(pk__in=ids)
        .values(
            "pk",
            "is_active",
            "email",
            *_user_name_fields(),
            "notification_profile__timezone",
            "notification_profile__language",
        )
    )
    return {row["pk"]: row for row in rows}
