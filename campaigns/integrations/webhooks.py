"""Outbound status webhooks: what became of messages and opt-outs, POSTed to the endpoints
operators registered, signed per the Standard Webhooks spec.

Recording costs the send path nothing when no endpoint is active: which endpoints exist is
part of the catalog snapshot (``outbox.catalog``, invalidated when an endpoint is saved), so
``events_record`` returns at once without a query. With endpoints, one batch's events are
written in one INSERT (a ``WebhookDelivery`` per event and subscribed endpoint) and handed to
jobs on the bulk lane after commit (``queueing.webhooks_after_commit``).

``deliveries_send`` (the job) POSTs each due delivery, logs the try (``WebhookAttempt``:
status code, an excerpt of the answer, duration, next retry) and retries a failed one after
``RETRY_DELAYS`` (the spec's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), then gives
up. A 2xx answer is delivered; anything else (and a timeout, a refused connection) is
retried. The sweep (``deliveries_due``) hands out what is due and what a dead job held.

Addresses (SSRF): an endpoint URL must be http(s); unless ``WEBHOOK_ALLOW_PRIVATE`` is on,
a host that is or resolves to a loopback, private, link-local, reserved or multicast address
is refused when the endpoint is saved, and checked again before each POST (a name can be made
to resolve elsewhere later). Redirects are not followed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from campaigns.conf import app_settings
from campaigns.models import (
    Message,
    OptOut,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEventType,
)
from campaigns.outbox.catalog import Catalog, catalog
from campaigns.outbox.queueing import webhooks_after_commit

logger = logging.getLogger("notifier.webhooks")

#: Seconds to wait after the n-th failed try (the spec's recommended schedule): 8 tries in all.
RETRY_DELAYS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
EXCERPT = 500
#: Seconds a job goes on taking deliveries in turn; what it has not reached by then it puts
#: back (the sweep hands it out again), so a slow endpoint cannot run a job past RQ's timeout.
BUDGET_SECONDS = 60


# --- addresses ---------------------------------------------------------------------------------


def _address_refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def url_problem(url: str, *, resolve: bool = True) -> str:
    """Why status webhooks may not be sent to ``url`` ("" when they may)."""
    try:
        parts = urlsplit(url)
    except ValueError as error:
        return f"is not a URL: {error}"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    host = parts.hostname
    if not host:
        return "names no host"
    if parts.username or parts.password:
        return "must not carry a user name or password (the signature authenticates)"
    if app_settings.WEBHOOK_ALLOW_PRIVATE:
        return ""
    try:
        addresses = [host] if _is_ip(host) else []
        if not addresses and resolve:
            addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, parts.port)})
    except (OSError, UnicodeError) as error:
        return f"has a host that cannot be resolved ({error})"
    refused = [a for a in addresses if _address_refused(a)]
    if refused:
        return (
            f"points to a private or reserved address ({refused[0]}); set "
            "NOTIFIER['WEBHOOK_ALLOW_PRIVATE'] to allow it"
        )
    return ""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def url_validate(url: str) -> None:
    """The endpoint form's check: ValidationError naming the problem."""
    problem = url_problem(url)
    if problem:
        raise ValidationError(f"The URL {problem}.")


# --- recording events --------------------------------------------------------------------------


def _webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def message_data(message: Message, cat: Catalog) -> dict[str, Any]:
    """What a message event says about its message (names from the catalog: no query)."""
    event = cat.events_by_id.get(message.event_id)
    channel = cat.channels_by_id.get(message.channel_id)
    return {
        "id": str(message.uuid),
        "event": event.key if event else None,
        "channel": channel.key if channel else None,
        "address": message.address,
        "user_id": message.user_id,
        "status": message.status,
        "delivery_status": message.delivery_status,
        "status_reason": message.status_reason,
        "error": message.last_error,
        "sent_at": _iso(message.sent_at),
        "tag": message.tag,
        "idempotency_key": message.idempotency_key,
    }


def optout_data(optout: OptOut) -> dict[str, Any]:
    cat = catalog()
    event = cat.events_by_id.get(optout.event_id) if optout.event_id else None
    channel = cat.channels_by_id.get(optout.channel_id) if optout.channel_id else None
    return {
        "id": optout.pk,
        "user_id": optout.user_id,
        "address": optout.address,
        "scope": optout.scope,
        "event": event.key if event else None,
        "channel": channel.key if channel else None,
        "kind": optout.kind,
        "marketing": optout.marketing,
        "source": optout.source,
        "reason": optout.reason,
        "created_at": _iso(optout.created_at),
    }


def subscribed(event_type: str) -> list[int]:
    """Ids of the active endpoints that receive ``event_type`` (from the catalog)."""
    return [pk for pk, types in catalog().webhook_endpoints if not types or event_type in types]


def events_record(
    event_type: str, items: Iterable[Mapping[str, Any]], *, endpoint_ids: list[int] | None = None
) -> list[WebhookDelivery]:
    """Write one delivery per item (an event's ``data``) and subscribed endpoint, in one
    INSERT, and enqueue their sending after commit. No endpoint subscribed: nothing (and no
    query)."""
    endpoints = subscribed(event_type) if endpoint_ids is None else endpoint_ids
    if not endpoints:
        return []
    now = timezone.now()
    deliveries = [
        WebhookDelivery(
            endpoint_id=endpoint_id,
            event_type=event_type,
            webhook_id=_webhook_id(),
            payload={"type": event_type, "timestamp": now.isoformat(), "data": dict(data)},
            next_attempt_at=now,
            created_at=now,
        )
        for data in items
        for endpoint_id in endpoints
    ]
    if not deliveries:
        return []
    WebhookDelivery.objects.bulk_create(deliveries, batch_size=1000)
    webhooks_after_commit(d.pk for d in deliveries)
    return deliveries


def message_events_record(event_type: str, messages: Iterable[Message]) -> int:
    """A batch of messages came to ``event_type``: record it for the subscribed endpoints."""
    endpoints = subscribed(event_type)
    if not endpoints:
        return 0
    cat = catalog()  # one look at the snapshot for the batch
    return len(
        events_record(event_type, [message_data(m, cat) for m in messages], endpoint_ids=endpoints)
    )


def sent_receive(sender: Any, messages: list[Message], **kwargs: Any) -> None:
    """Receiver of ``messages_succeeded`` (once per dispatched batch)."""
    message_events_record(WebhookEventType.SENT, messages)


def failed_receive(sender: Any, messages: list[Message], **kwargs: Any) -> None:
    """Receiver of ``messages_failed`` (once per dispatched batch)."""
    message_events_record(WebhookEventType.FAILED, messages)


def optout_saved_receive(sender: Any, instance: OptOut, created: bool, **kwargs: Any) -> None:
    """``post_save`` of OptOut: every way one is made (a link, the preference centre, a
    bounce, an operator, the API) goes through a save."""
    if created and subscribed(WebhookEventType.OPTED_OUT):
        events_record(WebhookEventType.OPTED_OUT, [optout_data(instance)])


#: Delivery statuses providers report that endpoints hear of, and as which event.
DELIVERY_EVENTS = {
    "delivered": WebhookEventType.DELIVERED,
    "opened": WebhookEventType.OPENED,
    "read": WebhookEventType.OPENED,
    # Sent, then refused downstream: to whoever listens, the message failed.
    "bounced": WebhookEventType.FAILED,
    "undelivered": WebhookEventType.FAILED,
    "failed": WebhookEventType.FAILED,
    "rejected": WebhookEventType.FAILED,
}


def delivery_events_record(messages: Iterable[Message]) -> int:
    """Messages whose delivery status a provider just moved (``tracking.delivery``)."""
    by_type: dict[str, list[Message]] = {}
    for message in messages:
        event_type = DELIVERY_EVENTS.get(message.delivery_status)
        if event_type is not None:
            by_type.setdefault(event_type, []).append(message)
    return sum(message_events_record(t, group) for t, group in by_type.items())


def endpoint_test_send(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """The admin's "send test event": a ``webhook.test`` delivery to this endpoint only."""
    (delivery,) = events_record(
        WebhookEventType.TEST,
        [{"endpoint": endpoint.pk, "message": "a test event from Notifier"}],
        endpoint_ids=[endpoint.pk],
    )
    return delivery


# --- sending -----------------------------------------------------------------------------------


def signed_request(delivery: WebhookDelivery, secret: str, now: dt.datetime) -> tuple[bytes, dict]:
    """The body and headers of a delivery, signed with the endpoint's ``whsec_`` secret."""
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":"))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Notifier-Webhooks/1",
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery.webhook_id, now, body),
    }
    return body.encode(), headers


def _take(ids: list[int] | None, now: dt.datetime) -> list[WebhookDelivery]:
    due = Q(state=WebhookDeliveryStatus.PENDING, next_attempt_at__lte=now) & (
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )
    query = WebhookDelivery.objects.filter(due)
    if ids is not None:
        query = query.filter(pk__in=ids)
    with transaction.atomic():
        taken = list(
            query.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .order_by("id")[:500]
        )
        # Held until the job must have finished: its budget and one more request.
        lease = BUDGET_SECONDS + app_settings.WEBHOOK_TIMEOUT + 30
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in taken]).update(
            lease_until=now + dt.timedelta(seconds=lease)
        )
    return taken


def _post(client: httpx.Client, delivery: WebhookDelivery) -> WebhookAttempt:
    started = time.monotonic()
    now = timezone.now()
    attempt = WebhookAttempt(delivery=delivery, number=delivery.attempts + 1, at=now)
    endpoint = delivery.endpoint
    problem = "" if endpoint.is_active else "the endpoint is disabled"
    if not problem:
        problem = url_problem(endpoint.url)
    if problem:
        attempt.error = problem[:EXCERPT]
        return attempt
    try:
        body, headers = signed_request(delivery, endpoint.secret, now)
        response = client.post(endpoint.url, content=body, headers=headers)
        attempt.status_code = response.status_code
        attempt.response_excerpt = response.text[:EXCERPT]
    except httpx.HTTPError as error:
        attempt.error = f"{type(error).__name__}: {error}"[:EXCERPT]
    finally:
        attempt.duration_ms = int((time.monotonic() - started) * 1000)
    return attempt


def deliveries_send(*, ids: list[int] | None = None) -> dict[str, int]:
    """POST the due deliveries among ``ids`` (all due ones with None), log each try and
    schedule the retries. Returns counts by outcome."""
    now = timezone.now()
    started = time.monotonic()
    taken = _take(ids, now)
    counts = {"delivered": 0, "retrying": 0, "failed": 0, "put_back": 0}
    if not taken:
        return counts
    attempts = []
    with httpx.Client(timeout=app_settings.WEBHOOK_TIMEOUT, follow_redirects=False) as client:
        for delivery in taken:
            delivery.lease_until = None
            if time.monotonic() - started > BUDGET_SECONDS:
                counts["put_back"] += 1  # due as it was: the sweep hands it out again
                continue
            attempt = _post(client, delivery)
            delivery.attempts = attempt.number
            delivery.last_status_code = attempt.status_code
            if attempt.status_code is not None and 200 <= attempt.status_code < 300:
                delivery.state = WebhookDeliveryStatus.DELIVERED
                delivery.delivered_at = attempt.at
                delivery.next_attempt_at = None
                counts["delivered"] += 1
            elif (
                delivery.attempts >= MAX_ATTEMPTS
                or not delivery.endpoint.is_active
                or delivery.event_type == WebhookEventType.TEST
            ):
                delivery.state = WebhookDeliveryStatus.FAILED
                delivery.next_attempt_at = None
                counts["failed"] += 1
            else:
                delivery.next_attempt_at = attempt.at + dt.timedelta(
                    seconds=RETRY_DELAYS[delivery.attempts - 1]
                )
                attempt.next_retry_at = delivery.next_attempt_at
                counts["retrying"] += 1
            attempts.append(attempt)
    with transaction.atomic():
        WebhookAttempt.objects.bulk_create(attempts)
        WebhookDelivery.objects.bulk_update(
            taken,
            [
                "state",
                "attempts",
                "last_status_code",
                "next_attempt_at",
                "lease_until",
                "delivered_at",
            ],
        )
    return counts


def deliveries_due(*, now: dt.datetime | None = None) -> int:
    """For the sweep: enqueue the pending deliveries whose time has come and which no job
    holds (retries, and what a job lost with a dead worker left). Returns how many. With no
    active endpoint (the catalog says so), no query."""
    if not catalog().webhook_endpoints:
        return 0
    now = now or timezone.now()
    ids = list(
        WebhookDelivery.objects.filter(
            state=WebhookDeliveryStatus.PENDING, next_attempt_at__lte=now
        )
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:5000]
    )
    webhooks_after_commit(ids)
    return len(ids)
