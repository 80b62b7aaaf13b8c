"""Who recipients are and where they can be reached: their users (active, name, profile),
their addresses beyond their email (``ChannelAddress``), and the addresses a provider called
dead, deactivated so the next notify() skips them. Each read is one query however many
recipients there are."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Case, Value, When
from django.utils import timezone

from campaigns.models import ChannelAddress, RecipientProfile
from campaigns.outbox.bulk import bound_cursor
from channels.models import Devices

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


@functools.cache
def user_name_fields() -> tuple[str, ...]:
    """The user model's name columns: (first_name, last_name, USERNAME_FIELD) as it has them."""
    model = get_user_model()
    columns = {f.name for f in model._meta.concrete_fields}
    return (*(n for n in ("first_name", "last_name") if n in columns), model.USERNAME_FIELD)


def user_name(row: dict[str, Any]) -> str:
    """``get_full_name() or get_username()``, from a row of ``_users_load``."""
    *parts, username = (row[name] or "" for name in user_name_fields())
    return " ".join(parts).strip() or str(username)


def users_load(people: list[dict[str, Any]], *, also: int | None = None) -> dict[int, dict]:
    """The recipients' users (and user ``also``) by id: active, email, name columns, their
    profile's timezone and language, and their active addresses per kind (verified and newest
    first) under ``"addresses"``; one query on PostgreSQL."""
    ids = {person["user_id"] for person in people if person.get("user_id") is not None}
    if also is not None:
        ids.add(also)
    if not ids:
        return {}
    if connection.vendor != "postgresql":
        return _users_load_orm(ids)
    names = ["pk", "is_active", "email", *user_name_fields(), "timezone", "language"]
    with bound_cursor(connection) as cursor:
        cursor.execute(_users_sql(), [sorted(ids)])
        rows = cursor.fetchall()
    users = {}
    for *values, triples in rows:
        row = dict(zip(names, values, strict=True))
        row["addresses"], row["devices"] = addresses_by_kind(triples)
        users[row["pk"]] = row
    return users


def _users_load_orm(ids: set[int]) -> dict[int, dict]:
    rows = (
        get_user_model()
        .objects.filter(pk__in=ids)
        .values(
            "pk",
            "is_active",
            "email",
            *user_name_fields(),
            "notification_profile__timezone",
            "notification_profile__language",
        )
    )
    users = {}
    for row in rows:
        row["timezone"] = row.pop("notification_profile__timezone")
        row["language"] = row.pop("notification_profile__language")
        users[row["pk"]] = row
    found: dict[int, list] = {pk: [] for pk in users}
    for user_id, kind, address, verified in (
        ChannelAddress.objects.filter(user_id__in=users, is_active=True)
        .order_by("-updated_at", "-id")
        .values_list("user_id", "kind", "address", "is_verified")
    ):
        found[user_id].append((kind, address, "v" if verified else ""))
    for pk, triples in found.items():
        users[pk]["addresses"], users[pk]["devices"] = addresses_by_kind(triples)
    return users


def addresses_by_kind(
    triples: Iterable[tuple[str, str, str]] | None,
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """A user's active addresses, as (kind, address, "v" when verified) newest first →
    ({kind: the best one: verified first, then the newest}, {kind: all, newest first}).
    Which of them a channel sends to is its ``devices`` setting (``devices_pick``)."""
    best: dict[str, str] = {}
    devices: dict[str, list[str]] = {}
    verified: set[str] = set()
    for kind, address, flag in triples or ():
        devices.setdefault(kind, []).append(address)
        if flag and kind not in verified:
            verified.add(kind)
            best[kind] = address
        else:
            best.setdefault(kind, address)
    return best, devices


def devices_pick(*, setting: str, best: str, devices: list[str]) -> list[str]:
    """The addresses of one kind a channel's ``devices`` setting sends to: ``best`` (the one
    address the recipient mapping holds), the newest, or all of them (newest first)."""
    if setting == Devices.ALL and devices:
        return devices
    if setting == Devices.NEWEST and devices:
        return devices[:1]
    return [best]


@functools.cache
def _users_sql() -> str:
    user_meta = get_user_model()._meta
    profile = RecipientProfile._meta
    address = ChannelAddress._meta
    quote = connection.ops.quote_name

    def col(meta, name: str) -> str:
        return quote(meta.get_field(name).column)

    user_columns = ", ".join(
        f"u.{col(user_meta, name)}"
        for name in (user_meta.pk.name, "is_active", "email", *user_name_fields())
    )
    # Identifiers come from model metadata; the ids are a parameter.
    return (
        f"SELECT {user_columns}, p.{col(profile, 'timezone')}, "  # noqa: S608
        f"p.{col(profile, 'language')}, "
        f"(SELECT array_agg(ARRAY[a.{col(address, 'kind')}, a.{col(address, 'address')}, "
        f"CASE WHEN a.{col(address, 'is_verified')} THEN 'v' ELSE '' END] "
        f"ORDER BY a.{col(address, 'updated_at')} DESC, a.{col(address, 'id')} DESC) "
        f"FROM {quote(address.db_table)} a WHERE a.{col(address, 'user')} = "
        f"u.{col(user_meta, user_meta.pk.name)} AND a.{col(address, 'is_active')}) "
        f"FROM {quote(user_meta.db_table)} u "
        f"LEFT JOIN {quote(profile.db_table)} p ON p.{col(profile, 'user')} = "
        f"u.{col(user_meta, user_meta.pk.name)} "
        f"WHERE u.{col(user_meta, user_meta.pk.name)} = ANY(%s)"
    )
