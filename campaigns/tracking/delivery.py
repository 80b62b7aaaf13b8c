"""What providers say after a message was sent, applied by one service.

Every provider's feedback arrives as ``channels.webhooks.DeliveryEvent``s: an ESP's tracking
events (django-anymail's signal, after anymail checked the ESP's credentials), a Twilio status
callback (its signature checked first), an Expo push receipt (polled). ``delivery_events_apply``
records them all the same way:

- the message is the one the provider knows by ``provider_id`` (on the event's channel when
  the event names one); an event that names another recipient than the message's address is
  ignored (a forged or confused payload changes nothing);
- ``delivery_status`` only moves forward (``DELIVERY_STATUS_REPLACES``, checked in the
  ``UPDATE`` itself, so a late ``sent`` never undoes a ``delivered``, even when two callbacks
  race); ``status_reason`` keeps the provider's words;
- an event that says the address is dead deactivates its ``ChannelAddress`` (as
  ``AddressRejected`` does at send time), and a hard bounce or a complaint opts the message's
  own address out of its channel — never an address taken from the payload — so the next
  ``notify()`` skips it.

The message's ``status`` stays ``sent``. The number of queries does not grow with the number
of events: one read of the messages, one write per distinct status, and a few for the
addresses and opt-outs they touch.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.utils import timezone

from campaigns.integrations.webhooks import delivery_events_record
from campaigns.models import Message, OptOut
from campaigns.outbox.bulk import rows_update
from campaigns.outbox.escalation import (
    DELIVERED,
    DELIVERED_STATUSES,
    LOST_STATUSES,
    SEEN_STATUSES,
    escalations_hasten,
    escalations_stop,
)
from campaigns.recipients.addresses import addresses_deactivate
from channels.models import ChannelConfig
from channels.webhooks.anymail import anymail_event
from channels.webhooks.base import DeliveryEvent, WebhookNotFound
from channels.webhooks.twilio import callback_urls, twilio_status_event

logger = logging.getLogger("notifier.tracking")

MAX_REASON = Message._meta.get_field("status_reason").max_length

_EARLY = ("", "queued", "sending", "sent", "deferred")
_FINAL = ("delivered", "undelivered", "failed", "rejected", "cancelled", "unknown")
#: For each delivery status, the statuses it may replace: feedback only moves forward. A
#: status that says how it ended replaces only those that say it is under way; a bounce may
#: still follow a delivery (asynchronous bounces), reading and clicking only a delivery, and
#: a complaint or an unsubscribe anything but a failure.
DELIVERY_STATUS_REPLACES: dict[str, tuple[str, ...]] = {
    "queued": ("",),
    "sending": ("", "queued"),
    "sent": ("", "queued", "sending"),
    "deferred": ("", "queued", "sending", "sent", "deferred"),
    **dict.fromkeys(_FINAL, _EARLY),
    "bounced": (*_EARLY, "delivered"),
    "read": (*_EARLY, "delivered"),
    "opened": (*_EARLY, "delivered"),
    "clicked": (*_EARLY, "delivered", "opened", "read"),
    "complained": (*_EARLY, "delivered", "opened", "read", "clicked"),
    "unsubscribed": (*_EARLY, "delivered", "opened", "read", "clicked"),
}


@dataclass(slots=True)
class Applied:
    """What a batch of events did."""

    recorded: int = 0  # messages whose delivery status moved
    unknown: int = 0  # events about no message of ours
    ignored: int = 0  # events naming another recipient, or moving a status backwards
    deactivated: int = 0  # addresses a provider called dead
    suppressed: int = 0  # addresses opted out after a bounce or a complaint
    messages: list[Message] = field(default_factory=list)


def _provider_ids(event: DeliveryEvent) -> set[str]:
    """The ids the message may be stored under: ESPs drop a Message-ID's angle brackets."""
    bare = event.provider_id.strip().strip("<>")
    return {event.provider_id, bare, f"<{bare}>"} if bare else {event.provider_id}


def delivery_events_apply(events: Iterable[DeliveryEvent]) -> Applied:
    """Record each event on the message it is about (see the module's docstring)."""
    events = [e for e in events if e.provider_id]
    applied = Applied()
    if not events:
        return applied
    # Keyed by (channel key, provider id), and ("", provider id) for events that name no
    # channel (an ESP's): an event naming a channel only finds that channel's message.
    by_id: dict[tuple[str, str], Message] = {}
    for message in (
        Message.objects.select_related("channel")
        .filter(provider_id__in={pid for e in events for pid in _provider_ids(e)})
        .only(
            "id",
            "uuid",  # the rest of these, for the status webhooks' payload
            "event",
            "status",
            "status_reason",
            "last_error",
            "sent_at",
            "tag",
            "idempotency_key",
            "provider_id",
            "address",
            "user_id",
            "delivery_status",
            "channel__key",
            "channel__backend",
            "channel__config",
            "channel__updated_at",
        )
        .order_by("id")
    ):
        by_id[(message.channel.key, message.provider_id)] = message  # the newest wins
        by_id[("", message.provider_id)] = message

    now = timezone.now()
    updates: dict[str, list[dict]] = defaultdict(list)
    dead: dict[tuple[str, str], dict[str, tuple[int | None, str]]] = defaultdict(dict)
    suppress: dict[tuple[int, str], str] = {}
    for event in events:
        message = next(
            (
                by_id[(event.channel_key, pid)]
                for pid in _provider_ids(event)
                if (event.channel_key, pid) in by_id
            ),
            None,
        )
        if message is None:
            logger.info(
                "%s %s for unknown message %s",
                event.esp or "provider",
                event.status,
                event.provider_id,
            )
            applied.unknown += 1
            continue
        address = message.address.strip().lower()
        if event.address and event.address.strip().lower() != address:
            logger.warning(
                "%s %s for message %s names another recipient: ignored",
                event.esp or "provider",
                event.status,
                message.pk,
            )
            applied.ignored += 1
            continue
        if message.delivery_status not in DELIVERY_STATUS_REPLACES[event.status]:
            applied.ignored += 1  # a late or repeated event: the status stays
            continue
        row = {
            "id": message.pk,
            "delivery_status": event.status,
            "delivery_updated_at": event.at or now,
        }
        if event.reason:
            row["status_reason"] = event.reason[:MAX_REASON]
        updates[event.status].append(row)
        message.delivery_status = event.status
        applied.messages.append(message)
        if event.address_dead:
            kind = message.channel.backend_class.address_key or ""
            dead[(kind, message.channel.key)][message.address] = (message.user_id, event.reason)
        if event.suppress:
            reason = f"{event.raw_type or event.status} ({event.esp or 'provider'})"
            suppress[(message.channel_id, address)] = f"{reason}: {event.reason}"[:255]

    for status, rows in updates.items():
        with_reason = [r for r in rows if "status_reason" in r]
        without = [r for r in rows if "status_reason" not in r]
        guard = {"delivery_status__in": DELIVERY_STATUS_REPLACES[status]}
        applied.recorded += rows_update(
            Message,
            with_reason,
            ("delivery_status", "delivery_updated_at", "status_reason"),
            only_if=guard,
        )
        applied.recorded += rows_update(
            Message, without, ("delivery_status", "delivery_updated_at"), only_if=guard
        )
    _escalations_follow(updates, by_id)
    for (kind, _), addresses in dead.items():
        addresses_deactivate(kind=kind, dead=addresses)
        applied.deactivated += len(addresses)
    for (channel_id, address), reason in suppress.items():
        _, created = OptOut.objects.active().get_or_create(
            address=address,
            user=None,
            event=None,
            channel_id=channel_id,
            kind="",
            marketing=False,
            defaults={"reason": reason, "source": OptOut.Source.BOUNCE},
        )
        applied.suppressed += created
    if applied.recorded:
        delivery_events_record(applied.messages)  # nothing (no query) with no endpoint
    return applied


def anymail_tracking_receive(sender, event, esp_name, **kwargs) -> None:
    """The receiver connected to ``anymail.signals.tracking``: anymail's webhook views send
    it after checking the ESP's credentials (``campaigns.tracking.urls``)."""
    delivery = anymail_event(event, esp_name)
    if delivery is not None:
        delivery_events_apply([delivery])


def twilio_callback_apply(
    *, channel_key: str, path: str, params: Mapping[str, Iterable[str]], signature: str
) -> Applied:
    """A Twilio status callback for channel ``channel_key`` (``path`` with its query string,
    every POST parameter as a list of values): its signature is checked against the public
    URLs Twilio may have signed (``SITE_URL`` + path, or the channel's own
    ``status_callback``; never the host the request reached this process at), then it is
    applied. Raises ``WebhookNotFound`` (no Twilio channel has that key) or
    ``WebhookForbidden`` (a missing or wrong signature: nothing changes)."""
    channel = ChannelConfig.objects.filter(key=channel_key).first()
    if channel is None:
        raise WebhookNotFound(channel_key)
    event = twilio_status_event(
        channel=channel,
        urls=callback_urls(channel=channel, path=path),
        params=params,
        signature=signature,
    )
    return delivery_events_apply([event] if event is not None else [])


def _escalations_follow(updates: dict[str, list[dict]], by_id: dict) -> None:
    """What a delivery status means for the later steps of an escalation: an email opened or
    clicked was seen (its steps are cancelled), one delivered was delivered (its "not
    delivered" steps are cancelled), one bounced never arrived (its next step goes now). A
    query only for the statuses that came."""
    keys = {m.pk: m.channel.key for m in by_id.values()}
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for status, rows in updates.items():
        for row in rows:
            groups[(status, keys.get(row["id"], ""))].append(row["id"])
    for (status, channel), ids in groups.items():
        if status in SEEN_STATUSES:
            escalations_stop(ids, how=f"{status} on {channel}")
        elif status in DELIVERED_STATUSES:
            escalations_stop(ids, how=f"{status} on {channel}", conditions=[DELIVERED])
        elif status in LOST_STATUSES:
            escalations_hasten(ids, why=f"{channel}: {status}")
