"""A JSON field of backend options whose secret values are encrypted in the database."""

from __future__ import annotations

from typing import Any

from django.db import models

from channels.secrets import decrypt_all, options_encrypt


class SecretOptionsField(models.JSONField):
    """Backend options as JSON, their secret values encrypted at rest (``channels.secrets``).

    Python sees clear values: reading decrypts every encrypted value, saving (``save()``,
    ``create()``, ``bulk_create()``) encrypts the secret ones of the row's backend. By
    default the value is the options and the row's ``backend`` field names the backend;
    with ``nested="config"`` the value is a mapping whose ``"config"`` holds the options of
    the backend named by its own ``"backend"`` (a channel's declaration as synced).
    ``QuerySet.update()`` bypasses saving: it writes what it is given, as the migrations
    that encrypt and decrypt rows mean to.
    """

    def __init__(self, *args, nested: str | None = None, **kwargs):
        self.nested = nested
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.nested:
            kwargs["nested"] = self.nested
        return name, path, args, kwargs

    def encrypted(self, instance: models.Model, value: Any) -> Any:
        if self.nested is None:
            return options_encrypt(getattr(instance, "backend", ""), value)
        if isinstance(value, dict) and isinstance(value.get(self.nested), dict):
            backend = str(value.get("backend") or getattr(instance, "backend", ""))
            return {**value, self.nested: options_encrypt(backend, value[self.nested])}
        return value

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        return self.encrypted(model_instance, super().pre_save(model_instance, add))

    def from_db_value(self, value, expression, connection):
        return decrypt_all(super().from_db_value(value, expression, connection))

    def value_to_string(self, obj: models.Model) -> Any:
        """Serialisers (``dumpdata``) write the encrypted form, never a secret."""
        return self.encrypted(obj, self.value_from_object(obj))
