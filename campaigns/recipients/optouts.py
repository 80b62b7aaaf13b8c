"""Opt-out matching for many messages at once, in one query; with the addresses a provider
called dead, when a trigger is planned (``blocks_load``, one query for both)."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable

from django.db import connection
from django.db.models import Q

from campaigns.models import ChannelAddress, OptOut
from campaigns.outbox.bulk import bound_cursor

Matcher = Callable[..., bool]


def optouts_matcher(
    *,
    user_ids: Iterable[int | None],
    addresses: Iterable[str],
    event_ids: Iterable[int],
    channel_ids: Iterable[int],
) -> Matcher:
    """Load every opt-out that can match and return ``opted_out(user_id, address, event_id,
    channel_id)``. Addresses compare case-insensitively (opt-outs are stored lower-case)."""
    users = {u for u in user_ids if u is not None}
    addresses = {a.lower() for a in addresses if a}
    if not users and not addresses:
        return matcher_from([])
    rows = (
        OptOut.objects.filter(Q(user_id__in=users) | Q(address__in=addresses))
        .filter(Q(event__isnull=True) | Q(event__in=set(event_ids)))
        .filter(Q(channel__isnull=True) | Q(channel__in=set(channel_ids)))
        .values_list("user_id", "address", "event_id", "channel_id", "marketing")
    )
    return matcher_from(rows)


def matcher_from(rows: Iterable[tuple]) -> Matcher:
    """``opted_out(user_id, address, event_id, channel_id, marketing)`` over opt-out rows of
    (user id, address, event id, channel id, marketing only)."""
    by_user: dict[int, set] = defaultdict(set)
    by_address: dict[str, set] = defaultdict(set)
    for user_id, address, event_id, channel_id, marketing_only in rows:
        if user_id is not None:
            by_user[user_id].add((event_id, channel_id, marketing_only))
        if address:
            by_address[address].add((event_id, channel_id, marketing_only))

    def opted_out(
        user_id: int | None,
        address: str,
        event_id: int,
        channel_id: int,
        marketing: bool = False,
    ) -> bool:
        for scopes in (by_user.get(user_id, ()), by_address.get(address.lower(), ())):
            for scope_event, scope_channel, marketing_only in scopes:
                if (
                    scope_event in (None, event_id)
                    and scope_channel in (None, channel_id)
                    and (marketing or not marketing_only)
                ):
                    return True
        return False

    return opted_out


def blocks_load(
    *,
    user_ids: Iterable[int | None],
    addresses: Iterable[str],
    event_ids: Iterable[int],
    channel_ids: Iterable[int],
) -> tuple[Matcher, set[tuple[str, str]]]:
    """What stops a planned message: the opt-outs that can match (as ``optouts_matcher``), and
    the (kind, address) pairs a provider called dead, in one query on PostgreSQL."""
    users = sorted({u for u in user_ids if u is not None})
    wanted = {a for a in addresses if a}
    if not users and not wanted:
        return matcher_from([]), set()
    if connection.vendor != "postgresql":
        dead = set(
            ChannelAddress.objects.filter(address__in=wanted, is_active=False).values_list(
                "kind", "address"
            )
        )
        return optouts_matcher(
            user_ids=users, addresses=wanted, event_ids=event_ids, channel_ids=channel_ids
        ), dead
    with bound_cursor(connection) as cursor:
        cursor.execute(
            _blocks_sql(),
            [
                users,
                sorted({a.lower() for a in wanted}),
                sorted(set(event_ids)),
                sorted(set(channel_ids)),
                sorted(wanted),
            ],
        )
        rows = cursor.fetchall()
    optouts = [row[1:6] for row in rows if row[0] == "o"]
    dead = {(row[6], row[2]) for row in rows if row[0] == "d"}
    return matcher_from(optouts), dead


@functools.cache
def _blocks_sql() -> str:
    optout, address = OptOut._meta, ChannelAddress._meta
    quote = connection.ops.quote_name

    def col(meta, name: str) -> str:
        return quote(meta.get_field(name).column)

    # Identifiers come from model metadata; every value is a parameter.
    return (
        f"SELECT 'o', {col(optout, 'user')}, {col(optout, 'address')}, "  # noqa: S608
        f"{col(optout, 'event')}, {col(optout, 'channel')}, {col(optout, 'marketing')}, NULL "
        f"FROM {quote(optout.db_table)} WHERE ({col(optout, 'user')} = ANY(%s) "
        f"OR {col(optout, 'address')} = ANY(%s)) "
        f"AND ({col(optout, 'event')} IS NULL OR {col(optout, 'event')} = ANY(%s)) "
        f"AND ({col(optout, 'channel')} IS NULL OR {col(optout, 'channel')} = ANY(%s)) "
        f"UNION ALL SELECT 'd', NULL, {col(address, 'address')}, NULL, NULL, NULL, "
        f"{col(address, 'kind')} FROM {quote(address.db_table)} "
        f"WHERE {col(address, 'address')} = ANY(%s) AND NOT {col(address, 'is_active')}"
    )
