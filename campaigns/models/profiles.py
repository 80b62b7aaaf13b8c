from __future__ import annotations

import functools
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


@functools.cache
def known_timezones() -> frozenset[str]:
    """The IANA names zoneinfo knows. ``available_timezones()`` walks the tz database's
    directories and opens each file on every call (a few milliseconds): a contact import
    checks every row against it, so it is read once per process."""
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value and value not in known_timezones():
        raise ValidationError(f"{value!r} is not a known timezone (e.g. Europe/Berlin)")


class RecipientProfile(models.Model):
    """What Notifier keeps about a user as a recipient: the timezone their availability
    windows are read in, and the language their templates are chosen in."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_profile"
    )
    timezone = models.CharField(max_length=64, blank=True, validators=[validate_timezone])
    language = models.CharField(max_length=16, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "recipient profile"

    def __str__(self) -> str:
        return (
            f"{self.user}: {self.timezone or 'site timezone'}, {self.language or 'site language'}"
        )
