"""Opt-out matching for many messages at once, in one query."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from django.db.models import Q

from campaigns.models import OptOut

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
        return lambda user_id, address, event_id, channel_id: False
    rows = (
        OptOut.objects.filter(Q(user_id__in=users) | Q(address__in=addresses))
        .filter(Q(event__isnull=True) | Q(event__in=set(event_ids)))
        .filter(Q(channel__isnull=True) | Q(channel__in=set(channel_ids)))
        .values_list("user_id", "address", "event_id", "channel_id", "marketing")
    )
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
