"""Failed API token attempts, counted per client address in Redis (shared by every web
process), so guessing tokens from one address stops at ``API_TOKEN_FAILURE_LIMIT`` tries.

django-axes throttles the login pages, but it counts (address, username) pairs fed by
Django's login signals; a bearer token has no username, and faking one would mix token
guesses into the login records. django-ratelimit counts requests in a fixed window through a
Django cache, which this site does not share between processes. A failure counter per address
whose expiry restarts with every failure is the whole need: the address is refused until
``API_TOKEN_COOLOFF`` seconds pass without a failed try. A success does not reset it (or one
valid token would buy an attacker endless guesses). If Redis is unreachable the API is not
throttled (logged): the tokens themselves are 256-bit random.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from campaigns.conf import app_settings
from campaigns.connections import redis_connection

logger = logging.getLogger("notifier.throttle")
KEY = "notifier:throttle:api-token:{}"


def api_token_lockout_seconds(*, client: str) -> int:
    """Seconds until ``client`` may try a token again; 0 when it may now."""
    try:
        pipe = redis_connection().pipeline()
        pipe.get(KEY.format(client))
        pipe.ttl(KEY.format(client))
        failures, ttl = pipe.execute()
    except RedisError as error:
        logger.warning("API token throttle unavailable (not throttling): %s", error)
        return 0
    if failures is None or int(failures) < app_settings.API_TOKEN_FAILURE_LIMIT:
        return 0
    return max(int(ttl), 1)


def api_token_failure_record(*, client: str) -> int:
    """Count a failed attempt of ``client`` (restarting its cool-off); returns its failures."""
    try:
        pipe = redis_connection().pipeline()
        pipe.incr(KEY.format(client))
        pipe.expire(KEY.format(client), app_settings.API_TOKEN_COOLOFF)
        failures, _ = pipe.execute()
    except RedisError as error:
        logger.warning("API token throttle unavailable (not counting): %s", error)
        return 0
    return int(failures)
