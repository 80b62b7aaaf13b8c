"""Channels declared in code, and their sync into ``ChannelConfig`` rows.

Channels are declared in ``settings.NOTIFIER["CHANNELS"]`` or, from any installed app, in a
``notifications.py`` module with :func:`channel`. ``sync_channels()`` writes the declarations
into ``ChannelConfig`` rows so the admin shows them; channels created in the admin work too.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction

from .conf import channel_settings
from .models import ChannelConfig
from .registry import BUILTIN_BACKENDS, UnknownBackend, backend_class, resolve_backend_path


@dataclass(frozen=True)
class ChannelDeclaration:
    key: str
    backend: str
    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    max_attempts: int | None = None
    retry_delay: int | None = None
    declared_in: str = ""


_declared: dict[str, ChannelDeclaration] = {}


def channel(
    key: str,
    *,
    backend: str,
    name: str = "",
    options: dict | None = None,
    max_attempts: int | None = None,
    retry_delay: int | None = None,
) -> None:
    """Declare a channel from an app's ``notifications.py``."""
    module = inspect.getmodule(inspect.stack()[1].frame)
    _declared[key] = ChannelDeclaration(
        key=key,
        backend=backend,
        name=name or key,
        options=dict(options or {}),
        max_attempts=max_attempts,
        retry_delay=retry_delay,
        declared_in=module.__name__ if module else "notifications",
    )


def declared_channels() -> dict[str, ChannelDeclaration]:
    """Channels from settings, then those from notifications.py modules (settings win)."""
    channels = dict(_declared)
    for key, spec in channel_settings.CHANNELS.items():
        channels[key] = ChannelDeclaration(
            key=key,
            backend=spec.get("BACKEND", ""),
            name=spec.get("NAME", key),
            options=dict(spec.get("OPTIONS", {})),
            max_attempts=spec.get("MAX_ATTEMPTS"),
            retry_delay=spec.get("RETRY_DELAY"),
            declared_in="settings.NOTIFIER['CHANNELS']",
        )
    return channels


def known_backends() -> dict[str, str]:
    """Backend paths an operator can choose from: built-ins and every declared one."""
    paths = {dotted: dotted for dotted in BUILTIN_BACKENDS.values()}
    for declaration in declared_channels().values():
        dotted = resolve_backend_path(declaration.backend)
        paths.setdefault(dotted, dotted)
    labels = {}
    for dotted in paths:
        try:
            labels[dotted] = backend_class(dotted).verbose_name or dotted
        except UnknownBackend:
            continue
    return labels


def sync_channels() -> list[str]:
    """Write each declared channel into a ChannelConfig row (see ``sync_declared``)."""
    declarations = {
        key: {
            "name": declaration.name,
            "backend": resolve_backend_path(declaration.backend),
            "config": declaration.options,
            "max_attempts": declaration.max_attempts,
            "retry_delay": declaration.retry_delay,
            "declared_in": declaration.declared_in,
        }
        for key, declaration in declared_channels().items()
    }
    return sync_declared(ChannelConfig, declarations)


def sync_declared(model: type[models.Model], declarations: dict[str, dict[str, Any]]) -> list[str]:
    """Create missing rows; update a row only when its declaration in code changed since the
    last sync, so what operators changed in the admin survives every ``migrate``."""
    with transaction.atomic():
        existing = {row.key: row for row in model.objects.filter(key__in=declarations)}
        for key, values in declarations.items():
            declared = json.loads(json.dumps(values, default=str))
            row = existing.get(key)
            if row is None:
                model.objects.create(key=key, declared=declared, **values)
            elif row.declared != declared:
                for name, value in values.items():
                    setattr(row, name, value)
                row.declared = declared
                row.save()
    return list(declarations)
