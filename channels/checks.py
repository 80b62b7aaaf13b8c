"""System checks: a declared channel with a backend that cannot be imported, or with options
its backend does not know, stops ``manage.py check`` with the setting to fix."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from .backends.base import ConfigurationError
from .declarations import declared_channels
from .registry import BUILTIN_BACKENDS, UnknownBackend, backend_class
from .secrets import SETTING, configured_keys, key_problems

GENERATE = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


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


@register("notifier")
def check_secret_keys(app_configs=None, **kwargs):
    """Channel secrets are encrypted with NOTIFIER_SECRET_KEYS: required in production
    (DEBUG off), where a key derived from SECRET_KEY would tie them to it; and each key must
    be a Fernet key."""
    keys = configured_keys()
    if not keys and not settings.DEBUG:
        return [
            Error(
                f"{SETTING} is not set: channel secrets (passwords, API tokens) cannot be "
                "encrypted in the database or read back.",
                hint=f"Set the environment variable {SETTING} to a Fernet key ({GENERATE}); "
                "a comma-separated list rotates keys (the first encrypts). Only with DEBUG=1 "
                "does a key derived from SECRET_KEY stand in.",
                id="notifier.E011",
            )
        ]
    return [
        Error(
            f"{SETTING}: {problem}.",
            hint=f"Generate keys with: {GENERATE}",
            id="notifier.E012",
        )
        for problem in key_problems(keys)
    ]
