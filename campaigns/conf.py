"""Typed access to the ``NOTIFIER`` setting.

Every option Notifier reads lives under ``settings.NOTIFIER`` and is read here, through one
property each, at the moment it is needed, so ``override_settings(NOTIFIER=...)`` in tests
takes effect at once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


class AppSettings:
    def _get(self, name: str, default: Any) -> Any:
        return getattr(settings, "NOTIFIER", {}).get(name, default)

    @property
    def CHANNELS(self) -> dict[str, dict[str, Any]]:
        """Channels declared in code: ``{key: {"BACKEND": path, "NAME": str, "OPTIONS": {}}}``."""
        return self._get("CHANNELS", {})

    @property
    def EVENTS(self) -> dict[str, dict[str, Any]]:
        """Events declared in code: ``{key: {"name": str, "variables": [...], ...}}``."""
        return self._get("EVENTS", {})

    @property
    def QUEUE(self) -> str:
        """The django-rq queue that dispatch and sweep jobs go to."""
        return self._get("QUEUE", "notifier")

    @property
    def BATCH_SIZE(self) -> int:
        """How many message ids one dispatch job carries."""
        return int(self._get("BATCH_SIZE", 200))

    @property
    def LEASE_SECONDS(self) -> int:
        """How long a claimed batch may stay in ``sending`` before the sweep reclaims it."""
        return int(self._get("LEASE_SECONDS", 300))

    @property
    def QUEUED_TIMEOUT(self) -> int:
        """How long a ``queued`` row may wait for its job before the sweep enqueues it again
        (covers jobs lost with Redis)."""
        return int(self._get("QUEUED_TIMEOUT", 600))

    @property
    def MAX_ATTEMPTS(self) -> int:
        """Default attempts per message, when its channel does not set its own."""
        return int(self._get("MAX_ATTEMPTS", 5))

    @property
    def RETRY_DELAY(self) -> float:
        """Seconds before the first retry; later retries multiply by ``RETRY_BACKOFF``."""
        return float(self._get("RETRY_DELAY", 30))

    @property
    def RETRY_BACKOFF(self) -> float:
        return float(self._get("RETRY_BACKOFF", 2.0))

    @property
    def RETRY_JITTER(self) -> float:
        """Fraction of the delay added or removed at random (0.2 = ±20 %)."""
        return float(self._get("RETRY_JITTER", 0.2))

    @property
    def CAMPAIGN_CHUNK(self) -> int:
        """Recipients one campaign fan-out job writes (one transaction each)."""
        return int(self._get("CAMPAIGN_CHUNK", 1000))

    @property
    def DRY_RUN_INLINE_LIMIT(self) -> int:
        """Audiences up to this size get their dry run in the page's request; larger ones
        in an RQ job whose progress the page shows."""
        return int(self._get("DRY_RUN_INLINE_LIMIT", 20000))

    @property
    def CAMPAIGN_CANCEL_WAIT(self) -> float:
        """Seconds a cancel waits for batches already sending to finish before it answers."""
        return float(self._get("CAMPAIGN_CANCEL_WAIT", 30))

    @property
    def SWEEP_INTERVAL(self) -> int:
        """Seconds between two sweeps run by RQ's cron scheduler."""
        return int(self._get("SWEEP_INTERVAL", 5))

    @property
    def SWEEP_CHUNK(self) -> int:
        """Rows one sweep statement claims at most; a sweep loops until nothing is due."""
        return int(self._get("SWEEP_CHUNK", 5000))

    @property
    def PUSH_RECEIPT_DELAY(self) -> int:
        """Seconds after a push is sent before its Expo receipt is asked for (Expo advises
        about 15 minutes)."""
        return int(self._get("PUSH_RECEIPT_DELAY", 900))

    @property
    def PUSH_RECEIPT_MAX_AGE(self) -> int:
        """Seconds after which a push whose receipt never came is given up on: its
        ``delivery_status`` becomes ``unknown`` (Expo keeps receipts about a day)."""
        return int(self._get("PUSH_RECEIPT_MAX_AGE", 86400))

    @property
    def PUSH_RECEIPT_INTERVAL(self) -> int:
        """Seconds between two polls of push receipts run by RQ's cron scheduler."""
        return int(self._get("PUSH_RECEIPT_INTERVAL", 300))

    @property
    def DEBUG_SEND(self) -> bool:
        """Build and render messages, deliver nothing, end them in state ``debug``."""
        return bool(self._get("DEBUG_SEND", False))

    @property
    def EMAIL_DOMAIN(self) -> str:
        """Domain of the ``Message-ID`` header of emails (``<uuid@domain>``)."""
        return self._get("EMAIL_DOMAIN", "notifier.local")

    @property
    def TRUSTED_PROXY_COUNT(self) -> int:
        """How many proxies in front of the site append to ``X-Forwarded-For``: the client's
        address is the entry the outermost of them wrote. 0: ``REMOTE_ADDR`` (no proxy). Only
        right when the site cannot be reached except through them."""
        return int(self._get("TRUSTED_PROXY_COUNT", 0))

    @property
    def API_TOKEN_FAILURE_LIMIT(self) -> int:
        """Failed ``Authorization: Bearer`` attempts from one address before it gets 429."""
        return int(self._get("API_TOKEN_FAILURE_LIMIT", 10))

    @property
    def API_TOKEN_COOLOFF(self) -> int:
        """Seconds an address stays refused after its last failed bearer attempt."""
        return int(self._get("API_TOKEN_COOLOFF", 900))


app_settings = AppSettings()
