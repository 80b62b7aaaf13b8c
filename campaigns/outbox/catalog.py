"""What rarely changes, read once per process and kept: events, channels (with a backend
object each, to read and check addresses), which templates exist (and which version of each is
published), availability windows, escalation steps, and the active status webhook endpoints
(so a batch with none subscribed does nothing more); and the template versions dispatch
renders, which never change once published, kept by id (``versions_get``).

``notify()`` and every dispatch batch need all of it, and reading it from the database on
every call cost more than the rest of the call. Operators change it rarely, from the admin;
so each process keeps a snapshot and checks, on every use, one Redis key that any change
bumps (``catalog_changed``, connected to the models' save and delete signals, after commit):
a change made in the admin is seen by every worker at its next call. The thread that made
the change reads the database until its transaction ends (it sees its own uncommitted change,
and a rollback leaves nothing stale behind). When Redis cannot be reached, the snapshot is
read from the database on every use (correct, only slower).

The snapshot holds model instances that callers must treat as read-only.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from redis.exceptions import RedisError

from campaigns.connections import redis_connection, redis_run
from campaigns.domain.windows import Window
from campaigns.models import (
    AvailabilityWindow,
    EscalationStep,
    Event,
    Template,
    TemplateVersion,
    WebhookEndpoint,
)
from channels.backends.base import BaseBackend
from channels.models import ChannelConfig

logger = logging.getLogger("notifier.catalog")

KEY = "notifier:catalog"


@dataclass(slots=True)
class Catalog:
    version: bytes | None
    events: dict[str, Event] = field(default_factory=dict)  # by key
    events_by_id: dict[int, Event] = field(default_factory=dict)
    #: Every channel by id, and the active ones by key.
    channels_by_id: dict[int, ChannelConfig] = field(default_factory=dict)
    active: dict[str, ChannelConfig] = field(default_factory=dict)
    #: A backend object per active channel (not opened: for reading and checking addresses),
    #: or the error that building it raised.
    backends: dict[int, BaseBackend | Exception] = field(default_factory=dict)
    #: (event id, channel id) -> {language: (template id, published version id)} of the
    #: active, published templates
    templates: dict[tuple[int, int], dict[str, tuple[int, int]]] = field(default_factory=dict)
    event_windows: dict[int, list[Window]] = field(default_factory=dict)
    channel_windows: dict[int, list[Window]] = field(default_factory=dict)
    #: (id, event types: empty for all) of each active status webhook endpoint
    webhook_endpoints: list[tuple[int, frozenset[str]]] = field(default_factory=list)
    #: event id -> its escalation steps, in order: (channel key, delay in minutes, condition)
    #: (steps on inactive channels left out)
    escalations: dict[int, list[tuple[str, int, str]]] = field(default_factory=dict)

    def windows(self, event_id: int, channel_ids) -> tuple[list[Window], dict[int, list[Window]]]:
        """As ``selectors.windows_for``: the event's windows and each channel's."""
        return (
            self.event_windows.get(event_id, []),
            {pk: self.channel_windows.get(pk, []) for pk in channel_ids},
        )


def _load(version: bytes | None) -> Catalog:
    catalog = Catalog(version=version)
    for event in Event.objects.all():
        catalog.events[event.key] = event
        catalog.events_by_id[event.pk] = event
    for channel in ChannelConfig.objects.all():
        catalog.channels_by_id[channel.pk] = channel
        if channel.is_active:
            catalog.active[channel.key] = channel
            try:
                catalog.backends[channel.pk] = channel.get_backend()
            except Exception as error:  # misconfigured: refused when a call names it
                catalog.backends[channel.pk] = error
    templates: dict[tuple[int, int], dict[str, tuple[int, int]]] = defaultdict(dict)
    for pk, event_id, channel_id, language, published_id in Template.objects.filter(
        is_active=True, published__isnull=False
    ).values_list("pk", "event_id", "channel_id", "language", "published_id"):
        templates[(event_id, channel_id)][language] = (pk, published_id)
    catalog.templates = dict(templates)
    # The published versions, which most messages are made with: read with the snapshot, so a
    # dispatch batch reads none (older ones are read when a message still has one).
    _versions.preload(
        published for by_language in templates.values() for _, published in by_language.values()
    )
    for event_id, channel_id, weekdays, start, end in AvailabilityWindow.objects.order_by(
        "start_time", "id"
    ).values_list("event_id", "channel_id", "weekdays", "start_time", "end_time"):
        window = Window(weekdays, start, end)
        if event_id is not None:
            catalog.event_windows.setdefault(event_id, []).append(window)
        else:
            catalog.channel_windows.setdefault(channel_id, []).append(window)
    catalog.webhook_endpoints = [
        (pk, frozenset(types or ()))
        for pk, types in WebhookEndpoint.objects.filter(is_active=True)
        .order_by("pk")
        .values_list("pk", "event_types")
    ]
    for event_id, channel_id, minutes, condition in EscalationStep.objects.order_by(
        "event_id", "position", "id"
    ).values_list("event_id", "channel_id", "delay_minutes", "condition"):
        channel = catalog.channels_by_id.get(channel_id)
        if channel is not None and channel.is_active:
            catalog.escalations.setdefault(event_id, []).append((channel.key, minutes, condition))
    return catalog


class _Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._changing = threading.local()  # this thread changed the catalog, uncommitted

    def get(self) -> Catalog:
        if getattr(self._changing, "value", False):
            if transaction.get_connection().in_atomic_block:
                return _load(None)  # its own change is not committed: not for the others
            self._changing.value = False  # committed (and announced) or rolled back
            self.clear()
        try:
            (version,) = redis_run(("GET", KEY))
            version = version or b"0"
        except RedisError as error:
            logger.warning("catalog version unknown (%s): reading from the database", error)
            return _load(None)
        current = self._catalog
        if current is not None and current.version == version:
            return current
        catalog = _load(version)
        with self._lock:
            self._catalog = catalog
        return catalog

    def clear(self) -> None:
        with self._lock:
            self._catalog = None

    def changed(self) -> None:
        self.clear()
        if transaction.get_connection().in_atomic_block:
            self._changing.value = True

    def settled(self) -> None:
        """The current transaction's catalog changes count as done (tests, which never
        commit, say so before measuring)."""
        self._changing.value = False
        self.clear()


_cache = _Cache()


def catalog() -> Catalog:
    """The snapshot of events, channels, templates and windows (see the module's doc)."""
    return _cache.get()


def catalog_clear() -> None:
    """Forget this process's snapshot and versions (the next use reads the database)."""
    _cache.clear()
    _versions.clear()


class _Versions:
    """Template versions by id, least recently used dropped first. A published version is
    never changed, so what is kept never goes stale: no invalidation."""

    def __init__(self, size: int = 1024):
        self.size = size
        self._items: OrderedDict[int, TemplateVersion] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ids: Iterable[int]) -> dict[int, TemplateVersion]:
        wanted = {pk for pk in ids if pk}
        found: dict[int, TemplateVersion] = {}
        with self._lock:
            for pk in wanted:
                version = self._items.get(pk)
                if version is not None:
                    self._items.move_to_end(pk)
                    found[pk] = version
        missing = wanted - found.keys()
        if missing:
            loaded = TemplateVersion.objects.filter(pk__in=missing).select_related("layout_version")
            with self._lock:
                for version in loaded:
                    found[version.pk] = self._items[version.pk] = version
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return found

    def preload(self, ids: Iterable[int]) -> None:
        """Read those of these versions not kept yet, in one query (none when all are)."""
        self.get(ids)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_versions = _Versions()


def versions_get(ids: Iterable[int]) -> dict[int, TemplateVersion]:
    """The template versions of these ids that exist (as read-only instances): from this
    process's memory, and with one query those it does not hold yet."""
    return _versions.get(ids)


def _bump() -> None:
    try:
        redis_connection().incr(KEY)
    except RedisError as error:  # other processes read the database until Redis is back
        logger.warning("could not announce a catalog change: %s", error)


def catalog_changed(sender: Any = None, **kwargs: Any) -> None:
    """A row of the catalog changed: every process reads it anew at its next use (the others
    once the transaction commits)."""
    _cache.changed()
    transaction.on_commit(_bump)


def catalog_settled() -> None:
    """Treat the current transaction's catalog changes as committed in this thread: a test
    that never commits calls it before it measures what a call costs."""
    _cache.settled()


#: The models whose rows the snapshot holds.
CATALOG_MODELS = (
    Event,
    ChannelConfig,
    Template,
    AvailabilityWindow,
    EscalationStep,
    WebhookEndpoint,
)


def catalog_signals_connect() -> None:
    for model in CATALOG_MODELS:
        for signal in (post_save, post_delete):
            signal.connect(catalog_changed, sender=model, dispatch_uid=f"catalog-{model.__name__}")
