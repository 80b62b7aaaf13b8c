"""What a trigger needs to know about its recipients, read in one query on PostgreSQL: their
users (active, email, name, profile, active addresses), the opt-outs that can match them, and
the addresses a provider called dead.

The addresses a recipient can be reached at are only known once its user's are filled in, so
the query takes a superset: every value a recipient mapping gives, every user id, and (in the
database) each user's email and active addresses. The matcher and the dead set are exact on
what they are asked; reading a few rows more costs less than a second round trip.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection

from campaigns.models import ChannelAddress, OptOut, RecipientProfile
from campaigns.outbox.bulk import bound_cursor
from campaigns.recipients.addresses import addresses_by_kind, user_name_fields, users_load
from campaigns.recipients.optouts import Matcher, channel_kinds, matcher_from, optouts_matcher
from channels.models import ChannelConfig


@dataclass(slots=True)
class RecipientFacts:
    #: user id -> {"pk", "is_active", "email", name columns, "timezone", "language",
    #: "addresses": {kind: the best address}, "devices": {kind: [every active one, newest
    #: first]}}
    users: dict[int, dict[str, Any]]
    #: ``opted_out(user_id, address, event_id, channel_id, marketing)``
    opted_out: Matcher
    #: (kind, address) pairs a provider called dead
    dead: set[tuple[str, str]]


def candidate_addresses(people: Iterable[dict[str, Any]]) -> set[str]:
    """Every value a recipient gives that a channel could read as its address."""
    found = set()
    for person in people:
        for value in person.values():
            if isinstance(value, str) and value:
                found.add(value.strip())
            elif isinstance(value, int) and not isinstance(value, bool):
                found.add(str(value))
    return found


def recipient_facts_load(
    *,
    people: list[dict[str, Any]],
    also: int | None,
    event_ids: Iterable[int],
    channels: Iterable[ChannelConfig],
) -> RecipientFacts:
    """The facts about ``people`` (normalised recipients) and user ``also`` (the trigger
    user, checked to exist) for these events and channels."""
    user_ids = {p["user_id"] for p in people if p.get("user_id") is not None}
    if also is not None:
        user_ids.add(also)
    given = candidate_addresses(people)
    channels = list(channels)
    kinds = channel_kinds(channels)
    event_ids = sorted(set(event_ids))
    if connection.vendor != "postgresql":
        users = users_load(people, also=also)
        for user in users.values():
            given.add(user["email"])
            given.update(user["addresses"].values())
        given.update(str(pk) for pk in users)
        given.discard("")
        dead = set(
            ChannelAddress.objects.filter(address__in=given, is_active=False).values_list(
                "kind", "address"
            )
        )
        matcher = optouts_matcher(
            user_ids=users, addresses=given, event_ids=event_ids, channels=channels
        )
        return RecipientFacts(users=users, opted_out=matcher, dead=dead)
    if not user_ids and not given:
        return RecipientFacts(users={}, opted_out=matcher_from([], kinds), dead=set())
    with bound_cursor(connection) as cursor:
        cursor.execute(
            _facts_sql(),
            {
                "users": sorted(user_ids),
                "given": sorted(given | {str(pk) for pk in user_ids}),
                "events": event_ids,
                "channels": sorted(kinds),
                "kinds": sorted({kind for kind in kinds.values() if kind}),
            },
        )
        rows = cursor.fetchall()
    names = ["pk", "is_active", "email", *user_name_fields(), "timezone", "language"]
    width = len(names)
    users, optouts, dead = {}, [], set()
    for tag, *values in rows:
        if tag == "u":
            row = dict(zip(names, values[:width], strict=True))
            row["addresses"], row["devices"] = addresses_by_kind(values[width])
            users[row["pk"]] = row
        elif tag == "o":
            optouts.append(values[width + 1 : width + 7])
        else:
            dead.add((values[width + 7], values[width + 8]))
    return RecipientFacts(users=users, opted_out=matcher_from(optouts, kinds), dead=dead)


@functools.cache
def _facts_sql() -> str:
    user_meta = get_user_model()._meta
    profile, address, optout = RecipientProfile._meta, ChannelAddress._meta, OptOut._meta
    quote = connection.ops.quote_name

    def col(meta, name: str) -> str:
        return quote(meta.get_field(name).column)

    pk = col(user_meta, user_meta.pk.name)
    user_columns = [pk, col(user_meta, "is_active"), col(user_meta, "email")]
    user_columns += [col(user_meta, name) for name in user_name_fields()]
    width = len(user_columns) + 3  # + timezone, language, addresses
    pad = ", ".join(["NULL"] * width)
    addresses_table, optouts_table = quote(address.db_table), quote(optout.db_table)
    a_user, a_address, a_kind = col(address, "user"), col(address, "address"), col(address, "kind")
    a_active = col(address, "is_active")
    # Identifiers come from model metadata; every value is a named parameter. Each branch
    # fills its own columns: users, then opt-outs in force (6), then dead addresses (2).
    return (
        "WITH u AS ("  # noqa: S608
        f"SELECT {', '.join('u.' + c for c in user_columns)}, "
        f"p.{col(profile, 'timezone')} AS tz, p.{col(profile, 'language')} AS lang, "
        f"(SELECT array_agg(ARRAY[a.{a_kind}, a.{a_address}, "
        f"CASE WHEN a.{col(address, 'is_verified')} THEN 'v' ELSE '' END] "
        f"ORDER BY a.{col(address, 'updated_at')} DESC, a.{col(address, 'id')} DESC) "
        f"FROM {addresses_table} a WHERE a.{a_user} = u.{pk} AND a.{a_active}) AS addrs "
        f"FROM {quote(user_meta.db_table)} u LEFT JOIN {quote(profile.db_table)} p "
        f"ON p.{col(profile, 'user')} = u.{pk} WHERE u.{pk} = ANY(%(users)s)), "
        "c AS (SELECT unnest(%(given)s::text[]) AS address "
        f"UNION SELECT {col(user_meta, 'email')} FROM u "
        f"UNION SELECT a.{a_address} FROM {addresses_table} a "
        f"WHERE a.{a_user} = ANY(%(users)s) AND a.{a_active}) "
        f"SELECT 'u', u.*, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM u "
        f"UNION ALL SELECT 'o', {pad}, o.{col(optout, 'user')}, o.{col(optout, 'address')}, "
        f"o.{col(optout, 'event')}, o.{col(optout, 'channel')}, o.{col(optout, 'kind')}, "
        f"o.{col(optout, 'marketing')}, NULL, NULL FROM {optouts_table} o "
        f"WHERE o.{col(optout, 'revoked_at')} IS NULL "
        f"AND (o.{col(optout, 'user')} = ANY(%(users)s) "
        f"OR o.{col(optout, 'address')} IN (SELECT lower(address) FROM c)) "
        f"AND (o.{col(optout, 'event')} IS NULL OR o.{col(optout, 'event')} = ANY(%(events)s)) "
        f"AND (o.{col(optout, 'channel')} IS NULL "
        f"OR o.{col(optout, 'channel')} = ANY(%(channels)s)) "
        f"AND (o.{col(optout, 'kind')} = '' OR o.{col(optout, 'kind')} = ANY(%(kinds)s)) "
        f"UNION ALL SELECT 'd', {pad}, NULL, NULL, NULL, NULL, NULL, NULL, "
        f"a.{a_kind}, a.{a_address} "
        f"FROM {addresses_table} a WHERE a.{a_address} IN (SELECT address FROM c) "
        f"AND NOT a.{a_active}"
    )


def recheck_facts_load(
    *,
    user_ids: Iterable[int | None],
    addresses: Iterable[str],
    event_ids: Iterable[int],
    channels: Iterable[ChannelConfig],
) -> tuple[set[int], Matcher]:
    """Just before sending a batch: which of these users were deactivated, and the opt-outs
    that can match these messages; one query on PostgreSQL (none for nobody)."""
    users = sorted({u for u in user_ids if u is not None})
    wanted = sorted({a.lower() for a in addresses if a})
    channels = list(channels)
    kinds = channel_kinds(channels)
    event_ids = sorted(set(event_ids))
    if not users and not wanted:
        return set(), matcher_from([], kinds)
    if connection.vendor != "postgresql":
        inactive = set(
            get_user_model()
            .objects.filter(pk__in=users, is_active=False)
            .values_list("pk", flat=True)
        )
        matcher = optouts_matcher(
            user_ids=users, addresses=wanted, event_ids=event_ids, channels=channels
        )
        return inactive, matcher
    with bound_cursor(connection) as cursor:
        cursor.execute(
            _recheck_sql(),
            {
                "users": users,
                "addresses": wanted,
                "events": event_ids,
                "channels": sorted(kinds),
                "kinds": sorted({kind for kind in kinds.values() if kind}),
            },
        )
        rows = cursor.fetchall()
    inactive = {row[1] for row in rows if row[0] == "i"}
    return inactive, matcher_from((row[1:7] for row in rows if row[0] == "o"), kinds)


@functools.cache
def _recheck_sql() -> str:
    user_meta, optout = get_user_model()._meta, OptOut._meta
    quote = connection.ops.quote_name

    def col(meta, name: str) -> str:
        return quote(meta.get_field(name).column)

    pk = col(user_meta, user_meta.pk.name)
    # Identifiers come from model metadata; every value is a named parameter.
    return (
        f"SELECT 'i', {pk}, NULL, NULL, NULL, NULL, NULL "  # noqa: S608
        f"FROM {quote(user_meta.db_table)} "
        f"WHERE {pk} = ANY(%(users)s) AND NOT {col(user_meta, 'is_active')} "
        f"UNION ALL SELECT 'o', {col(optout, 'user')}, {col(optout, 'address')}, "
        f"{col(optout, 'event')}, {col(optout, 'channel')}, {col(optout, 'kind')}, "
        f"{col(optout, 'marketing')} FROM {quote(optout.db_table)} "
        f"WHERE {col(optout, 'revoked_at')} IS NULL "
        f"AND ({col(optout, 'user')} = ANY(%(users)s) "
        f"OR {col(optout, 'address')} = ANY(%(addresses)s)) "
        f"AND ({col(optout, 'event')} IS NULL OR {col(optout, 'event')} = ANY(%(events)s)) "
        f"AND ({col(optout, 'channel')} IS NULL OR {col(optout, 'channel')} = ANY(%(channels)s)) "
        f"AND ({col(optout, 'kind')} = '' OR {col(optout, 'kind')} = ANY(%(kinds)s))"
    )
