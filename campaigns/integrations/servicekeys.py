"""Service API keys: finding the key a request names, its rate limit, and its scopes.

A key is looked up by its prefix (unique, indexed) and its hash compared in constant time
(``hmac.compare_digest``), so the time an answer takes does not tell how much of a guessed
key was right. ``last_used_at`` is written at most once a minute per key.

The rate limit is a fixed window of one minute per key in Redis (one round trip: INCR and
EXPIRE); past ``rate_limit`` requests, the wait until the window ends is returned for the
``Retry-After`` header. When Redis cannot be reached, requests are let through (logged).
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import time

from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from campaigns.connections import redis_run
from campaigns.models import ServiceKey
from campaigns.models.servicekeys import PREFIX_LENGTH, SERVICE_KEY_PREFIX, service_key_hash

logger = logging.getLogger("notifier.api")

WINDOW = 60
#: How stale ``last_used_at`` may be before a request writes it again.
LAST_USED_PRECISION = dt.timedelta(seconds=60)


def service_key_authenticate(raw: str) -> ServiceKey | None:
    """The active key ``raw`` is, or None (unknown, wrong, or revoked)."""
    raw = raw.strip()
    if not raw.startswith(SERVICE_KEY_PREFIX) or len(raw) > 200:
        return None
    key = ServiceKey.objects.filter(prefix=raw[:PREFIX_LENGTH]).first()
    if key is None or not hmac.compare_digest(key.key_hash, service_key_hash(raw)):
        return None
    if key.revoked_at is not None:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        ServiceKey.objects.filter(pk=key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION)
        ).update(last_used_at=now)
        key.last_used_at = now
    return key


def service_key_revoke(key: ServiceKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])


def rate_limit_wait(key: ServiceKey) -> int:
    """0 when this request is within the key's limit; else the seconds until it may ask
    again (the request is not counted further)."""
    if not key.rate_limit:
        return 0
    now = time.time()
    window = int(now // WINDOW)
    name = f"notifier:api:rate:{key.pk}:{window}"
    try:
        count, _ = redis_run(("INCR", name), ("EXPIRE", name, WINDOW + 5))
    except RedisError as error:
        logger.warning("API rate limit not checked (%s): request let through", error)
        return 0
    if count <= key.rate_limit:
        return 0
    return max(1, int((window + 1) * WINDOW - now + 0.999))


def may_trigger(key: ServiceKey, event_key: str) -> bool:
    """Whether ``key`` may trigger the event ``event_key`` (a key limited to chosen events is
    refused any other, unknown ones too: it learns nothing of what else exists)."""
    if not key.can_trigger:
        return False
    if key.all_events:
        return True
    return key.events.filter(key=event_key).exists()
