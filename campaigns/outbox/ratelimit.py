"""A channel's rate limit, shared by every worker through Redis: a token bucket.

A channel may set ``rate_limit`` (messages per second) and ``rate_burst`` (how many may go at
once after a quiet spell). Before each send a worker takes a token; when none is left it
waits for the next one, or, if that is further away than ``max_wait``, stops the batch and
the rest of it is put back to be sent later. The bucket lives in one Redis hash per channel
and is updated by a Lua script on Redis's own clock, so any number of workers on any number
of machines stay under the limit together.
"""

from __future__ import annotations

import time

from redis.exceptions import RedisError

from campaigns.connections import redis_connection

# KEYS[1] the bucket; ARGV: rate (tokens/s), burst (bucket size).
# Returns 0 when a token was taken, else the seconds until the next one.
_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
return tostring(wait)
"""


class RateLimiter:
    def __init__(
        self, *, channel_id: int, rate: float, burst: int | None = None, max_wait: float = 30.0
    ):
        self.key = f"notifier:rate:{channel_id}"
        self.rate = float(rate)
        self.burst = max(1, int(burst or 1))
        self.max_wait = max_wait
        self._script = redis_connection().register_script(_TAKE)
        self.waited_too_long = 0.0  # the wait that stopped the batch, if one did

    def take(self) -> bool:
        """Wait for a token; False when the next one is more than ``max_wait`` away."""
        while True:
            try:
                wait = float(self._script(keys=[self.key], args=[self.rate, self.burst]))
            except RedisError:
                return True  # Redis gone: no limiter beats no delivery; the worker is stopping
            if wait <= 0:
                return True
            if wait > self.max_wait:
                self.waited_too_long = wait
                return False
            time.sleep(wait)


def limiter_for(channel) -> RateLimiter | None:
    if not channel.rate_limit:
        return None
    return RateLimiter(channel_id=channel.pk, rate=channel.rate_limit, burst=channel.rate_burst)
