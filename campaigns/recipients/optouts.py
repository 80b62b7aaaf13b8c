"""Opt-out matching for many messages at once, from one query (``facts`` reads the opt-outs
with the rest of what a plan or a recheck needs; ``optouts_matcher`` reads them alone)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from django.db.models import Q

from campaigns.models import OptOut
from channels.models import ChannelConfig

Matcher = Callable[..., bool]


def channel_kind(channel: ChannelConfig) -> str:
    """The kind of channel a person knows it as (its backend's category), or "" when its
    backend cannot be loaded."""
    try:
        return channel.backend_class.category
    except Exception:  # an unknown backend: its messages fail at dispatch, not here
        return ""


def channel_kinds(channels: Iterable[ChannelConfig]) -> dict[int, str]:
    """{channel id: kind} of these channels."""
    return {channel.pk: channel_kind(channel) for channel in channels}


def optouts_matcher(
    *,
    user_ids: Iterable[int | None],
    addresses: Iterable[str],
    event_ids: Iterable[int],
    channels: Iterable[ChannelConfig],
) -> Matcher:
    """Load every opt-out in force that can match and return ``opted_out(user_id, address,
    event_id, channel_id, marketing=False)``. Addresses compare case-insensitively (opt-outs
    are stored lower-case). An opt-out of a kind of channel matches every channel whose
    backend has that category; revoked opt-outs match nothing."""
    users = {u for u in user_ids if u is not None}
    addresses = {a.lower() for a in addresses if a}
    kinds = channel_kinds(channels)
    if not users and not addresses:
        return matcher_from([], kinds)
    rows = (
        OptOut.objects.active()
        .filter(Q(user_id__in=users) | Q(address__in=addresses))
        .filter(Q(event__isnull=True) | Q(event__in=set(event_ids)))
        .filter(Q(channel__isnull=True) | Q(channel__in=set(kinds)))
        .filter(Q(kind="") | Q(kind__in={kind for kind in kinds.values() if kind}))
        .values_list("user_id", "address", "event_id", "channel_id", "kind", "marketing")
    )
    return matcher_from(rows, kinds)


def matcher_from(rows: Iterable[tuple], kinds: dict[int, str]) -> Matcher:
    """``opted_out(user_id, address, event_id, channel_id, marketing)`` over opt-out rows of
    (user id, address, event id, channel id, kind, marketing only), for channels of
    ``kinds`` ({channel id: kind})."""
    by_user: dict[int, set] = defaultdict(set)
    by_address: dict[str, set] = defaultdict(set)
    for user_id, address, event_id, channel_id, kind, marketing_only in rows:
        if user_id is not None:
            by_user[user_id].add((event_id, channel_id, kind, marketing_only))
        if address:
            by_address[address].add((event_id, channel_id, kind, marketing_only))

    def opted_out(
        user_id: int | None,
        address: str,
        event_id: int,
        channel_id: int,
        marketing: bool = False,
    ) -> bool:
        kind = kinds.get(channel_id, "")
        for scopes in (by_user.get(user_id, ()), by_address.get(address.lower(), ())):
            for scope_event, scope_channel, scope_kind, marketing_only in scopes:
                if (
                    scope_event in (None, event_id)
                    and scope_channel in (None, channel_id)
                    and scope_kind in ("", kind)
                    and (marketing or not marketing_only)
                ):
                    return True
        return False

    return opted_out
