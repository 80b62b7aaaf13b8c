"""Channel secrets at rest: the values of a backend's ``secret_fields`` are encrypted in the
database (Fernet: AES-128-CBC with an HMAC-SHA256, from ``cryptography``).

An encrypted value is stored as ``{"$fernet": "<token>"}`` in place of the value (the token
holds the value as JSON, so a number stays a number). Options that are not secret stay
readable. Reading a row decrypts every such envelope (``SecretOptionsField.from_db_value``),
so models, ``values()`` and backends only ever see clear values; saving encrypts the secret
ones again (``SecretOptionsField.pre_save``).

Keys: ``settings.NOTIFIER_SECRET_KEYS`` (the environment's ``NOTIFIER_SECRET_KEYS``), a list
of Fernet keys. The first encrypts; all of them decrypt, so a key is rotated by putting a new
one first, running ``manage.py encrypt_channel_secrets`` (which rewrites every row with it),
then dropping the old one. Without keys, and only with ``DEBUG`` on, a key derived from
``SECRET_KEY`` (and ``SECRET_KEY_FALLBACKS`` to decrypt) is used, so a development site
needs no set-up; in production that is a system check error (``notifier.E011``) and any use
raises ``ImproperlyConfigured``: secrets would then hang on ``SECRET_KEY``, which Django
rotates for other reasons.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.crypto import salted_hmac

from channels.registry import UnknownBackend, backend_class

ENVELOPE = "$fernet"
SETTING = "NOTIFIER_SECRET_KEYS"
_DERIVATION_SALT = "notifier.channels.secrets"


class SecretKeyError(ImproperlyConfigured):
    """No usable key, or a stored secret that none of the keys decrypts."""


def configured_keys() -> list[str]:
    """The keys from settings (a list, or one comma-separated string), blanks dropped."""
    value = getattr(settings, SETTING, None) or []
    if isinstance(value, str):
        value = value.split(",")
    return [str(key).strip() for key in value if str(key).strip()]


def derived_key(secret_key: str) -> str:
    """A Fernet key derived from a Django ``SECRET_KEY`` (development only)."""
    digest = salted_hmac(_DERIVATION_SALT, "fernet", secret=secret_key, algorithm="sha256")
    return base64.urlsafe_b64encode(digest.digest()).decode()


def key_problems(keys: Iterable[str]) -> list[str]:
    """What is wrong with each key that Fernet refuses (without saying the key)."""
    problems = []
    for index, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            problems.append(f"key #{index} is not a Fernet key (32 url-safe base64 bytes)")
    return problems


@lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    problems = key_problems(keys)
    if problems:
        raise SecretKeyError(f"settings.{SETTING}: {'; '.join(problems)}")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet() -> MultiFernet:
    keys = configured_keys()
    if not keys:
        if not settings.DEBUG:
            raise SecretKeyError(
                f"{SETTING} is not set: channel secrets cannot be encrypted or read. Set it "
                "to a Fernet key (python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')."
            )
        fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", [])
        keys = [derived_key(settings.SECRET_KEY), *map(derived_key, fallbacks)]
    return _fernet(tuple(keys))


def is_encrypted(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {ENVELOPE} and isinstance(value[ENVELOPE], str)


def encrypt_value(value: Any) -> dict[str, str]:
    if is_encrypted(value):
        return value
    token = fernet().encrypt(json.dumps(value, separators=(",", ":")).encode())
    return {ENVELOPE: token.decode()}


def decrypt_value(value: Any) -> Any:
    if not is_encrypted(value):
        return value
    try:
        return json.loads(fernet().decrypt(value[ENVELOPE].encode()))
    except InvalidToken:
        raise SecretKeyError(
            f"a channel secret cannot be decrypted with settings.{SETTING}: it was encrypted "
            "with a key that is no longer listed (keep the old key after the new one until "
            "manage.py encrypt_channel_secrets has run)"
        ) from None


def secret_names(backend: str) -> set[str] | None:
    """The secret options of the backend at ``backend`` (a path or a built-in key); None
    when it cannot be imported, which means: treat every option as secret."""
    try:
        return set(backend_class(backend).secret_fields())
    except UnknownBackend:
        return None


def options_encrypt(backend: str, options: Any) -> Any:
    """``options`` with the backend's secret values encrypted (all values, when the backend
    is unknown); values already encrypted and empty ones are left as they are."""
    if not isinstance(options, dict):
        return options
    secrets = secret_names(backend)
    return {
        name: (
            encrypt_value(value)
            if (secrets is None or name in secrets) and value not in (None, "")
            else value
        )
        for name, value in options.items()
    }


def decrypt_all(value: Any) -> Any:
    """``value`` (any JSON) with every envelope in it decrypted."""
    if is_encrypted(value):
        return decrypt_value(value)
    if isinstance(value, dict):
        return {name: decrypt_all(item) for name, item in value.items()}
    if isinstance(value, list):
        return [decrypt_all(item) for item in value]
    return value
