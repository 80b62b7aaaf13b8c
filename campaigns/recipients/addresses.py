"""Addresses a provider called dead: deactivated, so the next notify() skips them."""

from __future__ import annotations

from collections.abc import Mapping

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
