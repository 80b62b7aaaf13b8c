"""System checks: a declared channel with a backend that cannot be imported, or with options
its backend does not know, stops ``manage.py check`` with the setting to fix."""

from __future__ import annotations

from django.core.checks import Error, register

from .backends.base import ConfigurationError
from .registry import BUILTIN_BACKENDS, UnknownBackend, backend_class, declared_channels


@register("notifier")
def check_declared_channels(app_configs=None, **kwargs):
    errors = []
    for key, declaration in declared_channels().items():
        where = (
            f"NOTIFIER['CHANNELS'][{key!r}]"
            if declaration.declared_in.startswith("settings")
            else f"channel({key!r}) in {declaration.declared_in}"
        )
        if not declaration.backend:
            errors.append(
                Error(
                    f"{where} names no BACKEND.",
                    hint="Set 'BACKEND' to a dotted path or a built-in key "
                    f"({', '.join(sorted(BUILTIN_BACKENDS))}).",
                    id="notifier.E001",
                )
            )
            continue
        try:
            cls = backend_class(declaration.backend)
        except UnknownBackend as error:
            errors.append(
                Error(
                    f"{where}['BACKEND']: {error}",
                    id="notifier.E002",
                    hint="Fix the dotted path of the backend class.",
                )
            )
            continue
        try:
            cls.clean_options(declaration.options, channel_key=key)
        except ConfigurationError as error:
            errors.append(Error(f"{where}['OPTIONS']: {error}", id="notifier.E003"))
    return errors
