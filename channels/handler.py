"""Open backends, kept per channel and thread and reused from one batch to the next, like
Django's connection handlers (``django.db.connections``, ``django.core.cache.caches``).

    from channels.handler import backends

    backend = backends[channel]      # opened once, then the same one for every batch
    for result in backend.send(messages): ...
    backends.discard(channel)        # after a connection-level failure: the next is new
    backends.close_all()             # when the worker stops

An entry belongs to one version of its channel's row: when the row changed since (its
``updated_at``, its backend or its options), the old backend is closed and a new one built,
so an operator's edit in the admin takes effect at the next batch. An entry unused for
``IDLE_SECONDS`` is closed and built anew too: servers drop idle connections (an SMTP server
after a minute or so), and the first send on a dropped one would fail. Entries are per thread
(``asgiref.local.Local``): a backend's client is never shared between threads.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from asgiref.local import Local

from .backends.base import BaseBackend, ConfigurationError, DeliveryError
from .models import ChannelConfig
from .registry import UnknownBackend

logger = logging.getLogger("notifier.channels")

#: A kept backend unused for longer is closed and built anew (see the module's docstring).
IDLE_SECONDS = 30.0


def channel_version(channel: ChannelConfig) -> tuple[Any, ...]:
    """What a cached backend was built from: a row saved since, or given another backend or
    other options, is another version."""
    options = json.dumps(channel.config or {}, sort_keys=True, default=str)
    return (channel.backend, channel.updated_at, options)


class ChannelHandler:
    """The open backends of the current thread, one per channel (see the module's doc)."""

    def __init__(self) -> None:
        self._local = Local()

    @property
    def _open(self) -> dict[int, tuple[tuple[Any, ...], BaseBackend, float]]:
        try:
            return self._local.backends
        except AttributeError:
            self._local.backends = {}
            return self._local.backends

    def __getitem__(self, channel: ChannelConfig) -> BaseBackend:
        """The opened backend of ``channel``: the one kept for this version of its row, or a
        new one, opened now. Raises ``UnknownBackend`` or ``ConfigurationError`` when the
        channel's backend cannot be built, and what ``open()`` raises when it cannot be
        opened (nothing is kept then)."""
        version = channel_version(channel)
        kept = self._open.get(channel.pk)
        now = time.monotonic()
        if kept is not None:
            if kept[0] == version and now - kept[2] < IDLE_SECONDS:
                self._open[channel.pk] = (version, kept[1], now)
                return kept[1]
            self.discard(channel)
        backend = channel.get_backend()
        try:
            backend.open()
        except BaseException:
            _close(backend)
            raise
        self._open[channel.pk] = (version, backend, now)
        return backend

    def get(self, channel: ChannelConfig, default: BaseBackend | None = None) -> BaseBackend | None:
        """Like ``backends[channel]``, but ``default`` when the backend cannot be built
        (unknown, misconfigured) or opened."""
        try:
            return self[channel]
        except (UnknownBackend, ConfigurationError, DeliveryError):
            return default

    def discard(self, channel: ChannelConfig) -> None:
        """Close and forget the backend kept for ``channel`` (if any): the next
        ``backends[channel]`` builds a new one. For a backend whose connection failed."""
        kept = self._open.pop(channel.pk, None)
        if kept is not None:
            _close(kept[1])

    def close_all(self) -> None:
        """Close every backend of this thread (a failure to close one is logged, and the
        others are closed all the same)."""
        kept, self._local.backends = self._open, {}
        for _, backend, _ in kept.values():
            _close(backend)

    def __len__(self) -> int:
        return len(self._open)


def _close(backend: BaseBackend) -> None:
    try:
        backend.close()
    except Exception:  # closing cannot undo what was sent: say it and go on
        logger.warning("closing %s failed", type(backend).__name__, exc_info=True)


#: The handler of the process.
backends = ChannelHandler()
