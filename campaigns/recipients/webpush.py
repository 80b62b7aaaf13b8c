"""Browser push subscriptions of end users (the ``push.webpush`` channel).

The inbox page offers "Enable browser notifications" when an active Web Push channel exists:
the browser subscribes with the channel's VAPID public key, and the page posts the
subscription here. It is kept as the user's ``ChannelAddress`` of kind ``webpush``, stored
as compact JSON with the endpoint first (``subscription_json``), so one endpoint is one row:
registering it again updates its keys and reactivates it. A browser belongs to whoever
registered it last: the row moves to that user, so the previous one stops getting
notifications there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from campaigns.models import ChannelAddress
from channels.backends.webpush import (
    WebPushBackend,
    endpoint_prefix,
    parse_subscription,
    subscription_json,
)
from channels.models import ChannelConfig
from channels.registry import UnknownBackend, backend_class

logger = logging.getLogger(__name__)
KIND = WebPushBackend.address_key
MAX_ADDRESS = ChannelAddress._meta.get_field("address").max_length


class InvalidSubscription(ValueError):
    """The subscription a page sent cannot be stored; the message says why."""


@dataclass(frozen=True)
class WebPushSettings:
    channel_key: str
    public_key: str  # the applicationServerKey browsers subscribe with


def webpush_settings() -> WebPushSettings | None:
    """The active Web Push channel's public key (the first by key), or None when there is
    none: one small query."""
    for key, path, config in ChannelConfig.objects.filter(is_active=True).values_list(
        "key", "backend", "config"
    ):
        try:
            cls = backend_class(path)
        except (UnknownBackend, ImportError):
            continue
        if cls.browser_subscriptions:
            try:
                backend = cls(channel_key=key, options=config)
            except Exception:  # a misconfigured channel offers nothing to subscribe to
                logger.warning("Web Push channel %s is misconfigured", key, exc_info=True)
                continue
            return WebPushSettings(channel_key=key, public_key=backend.public_key)
    return None


def _parse(subscription: Any) -> dict[str, Any]:
    try:
        return parse_subscription(subscription)
    except ValidationError as error:
        raise InvalidSubscription(" ".join(error.messages)) from None


def webpush_subscription_register(*, user, subscription: Any) -> ChannelAddress:
    """Store the browser subscription (JSON text or a mapping) as the user's address;
    idempotent for one endpoint. Raises ``InvalidSubscription`` naming the problem."""
    parsed = _parse(subscription)
    address = subscription_json(parsed)
    if len(address) > MAX_ADDRESS:
        raise InvalidSubscription(
            f"the push subscription is {len(address)} characters long; at most {MAX_ADDRESS} "
            "can be stored"
        )
    with transaction.atomic():
        rows = list(
            ChannelAddress.objects.select_for_update()
            .filter(kind=KIND, address__startswith=endpoint_prefix(parsed["endpoint"]))
            .order_by("pk")
        )
        if not rows:
            return ChannelAddress.objects.create(user=user, kind=KIND, address=address)
        row, *stale = rows  # older keys of the same endpoint: the browser replaced them
        if stale:
            ChannelAddress.objects.filter(pk__in=[r.pk for r in stale]).delete()
        row.user = user
        row.address = address
        row.is_active = True
        row.deactivated_reason = ""
        row.save(update_fields=["user", "address", "is_active", "deactivated_reason", "updated_at"])
        return row


def webpush_subscription_remove(*, user, endpoint: Any) -> int:
    """Forget the user's subscription of this endpoint ("Disable"); how many rows went.
    Another user's subscription is never touched."""
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidSubscription("give the subscription's endpoint to remove it")
    deleted, _ = ChannelAddress.objects.filter(
        user=user, kind=KIND, address__startswith=endpoint_prefix(endpoint)
    ).delete()
    return deleted
