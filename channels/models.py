from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from .backends.base import BaseBackend, ConfigurationError
from .fields import SecretOptionsField
from .registry import UnknownBackend, backend_class, resolve_backend_path

SECRET_MASK = "••••••••"  # noqa: S105 - the mask shown instead of a secret


class Devices(models.TextChoices):
    """Which of a person's active addresses of the channel's kind get a message (README
    "Every device"): each one its own message, with its own status and retries."""

    BEST = "best", "The best one (verified first, then the newest)"
    NEWEST = "newest", "The newest one"
    ALL = "all", "All of them (every phone, every browser)"


class ChannelConfig(models.Model):
    """A configured delivery route: which backend, and its settings."""

    key = models.SlugField(
        max_length=64, unique=True, help_text="Used in code: notify(channels=[key])"
    )
    name = models.CharField(max_length=200)
    backend = models.CharField(
        max_length=255, help_text="Dotted path of the backend class, or a built-in key like 'email'"
    )
    config = SecretOptionsField(
        default=dict,
        blank=True,
        help_text="Options validated by the backend; its secret ones encrypted at rest",
    )
    is_active = models.BooleanField(default=True)
    max_attempts = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Attempts per message before it fails (default: NOTIFIER MAX_ATTEMPTS)",
    )
    retry_backoff = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1.0)],
        help_text="Multiplier of the delay for each further retry (default: RETRY_BACKOFF)",
    )
    rate_limit = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.01)],
        help_text="At most this many messages per second, across all workers (empty: no limit)",
    )
    rate_burst = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="How many may go at once after a quiet spell (default 1)",
    )
    retry_delay = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds before the first retry (default: RETRY_DELAY)"
    )
    devices = models.CharField(
        max_length=8,
        choices=Devices.choices,
        default=Devices.BEST,
        help_text="A person with several addresses of this channel's kind (two phones, three "
        "browsers) gets the message on: the best one, the newest one, or all of them",
    )
    declared_in = models.CharField(
        max_length=255,
        blank=True,
        editable=False,
        help_text="Where code declares this channel; empty for channels created in the admin",
    )
    declared = SecretOptionsField(
        nested="config",
        default=dict,
        blank=True,
        editable=False,
        help_text="The declaration last synced from code; admin edits stand until it changes",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        verbose_name = "channel"

    def __str__(self) -> str:
        return self.name or self.key

    @property
    def backend_class(self) -> type[BaseBackend]:
        return backend_class(self.backend)

    def get_backend(self) -> BaseBackend:
        return self.backend_class(channel_key=self.key, options=self.config)

    def clean_fields(self, exclude=None) -> None:
        """``config`` is validated with the fields, by its backend, so that a form editing
        the options as fields of their own (the admin's) leaves ``config`` out and reports
        each option's error next to its field instead."""
        errors: dict = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if "config" not in (exclude or ()) and "backend" not in errors:
            try:
                self.backend_class.clean_options(self.config or {}, channel_key=self.key)
            except UnknownBackend:
                pass  # clean() names it on ``backend``
            except ConfigurationError as error:
                errors["config"] = [str(error)]
        if errors:
            raise ValidationError(errors)

    def clean(self) -> None:
        try:
            self.backend = resolve_backend_path(self.backend)
            self.backend_class  # noqa: B018 - imports it: an unknown backend is an error here
        except UnknownBackend as error:
            raise ValidationError({"backend": str(error)}) from error

    def masked_config(self) -> dict[str, Any]:
        """The config with every secret replaced by a mask: what the admin and exports show."""
        try:
            secrets = set(self.backend_class.secret_fields())
        except Exception:
            secrets = set(self.config)
        return {
            k: (SECRET_MASK if k in secrets and v else v) for k, v in (self.config or {}).items()
        }
