"""API keys for services that are not Django: what they may do over ``/api/v1/``.

Different from ``ApiToken`` (an end user's token for their own inbox): a service key belongs
to no user, and its scopes say what it may do — trigger events (all, or a chosen list), read
messages, manage opt-outs. Only the SHA-256 of the key is stored, and its first characters
(``prefix``) to find it by and to tell keys apart; the key itself is shown once, when it is
created.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models

SERVICE_KEY_PREFIX = "nsk_"
#: Characters of a key kept in the clear: "nsk_" and 8 random ones, enough to find it by.
PREFIX_LENGTH = 12


def service_key_hash(raw: str) -> str:
    """A key is 32 random bytes: a plain SHA-256 cannot be reversed by guessing."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ServiceKey(models.Model):
    name = models.CharField(max_length=100, help_text="Which service uses it, e.g. 'shop'")
    prefix = models.CharField(
        max_length=PREFIX_LENGTH, unique=True, editable=False, help_text="Its first characters"
    )
    key_hash = models.CharField(max_length=64, editable=False)
    can_trigger = models.BooleanField(
        default=False, help_text="May send notifications (POST /api/v1/notifications)"
    )
    all_events = models.BooleanField(
        default=False,
        help_text="May trigger every event, including ones added later; otherwise only the "
        "events chosen below",
    )
    events = models.ManyToManyField(
        "campaigns.Event",
        blank=True,
        related_name="+",
        help_text="The events it may trigger (when not all)",
    )
    can_read_messages = models.BooleanField(
        default=False, help_text="May look up messages and their status"
    )
    can_manage_optouts = models.BooleanField(
        default=False, help_text="May list, create and revoke opt-outs"
    )
    rate_limit = models.PositiveIntegerField(
        default=600,
        help_text="Requests per minute it may make; 0 for no limit. Past it, 429 with Retry-After",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    revoked_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When it stopped working"
    )
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Its last request (to the minute)"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "service API key"

    def __str__(self) -> str:
        revoked = " (revoked)" if self.revoked_at else ""
        return f"{self.name} ({self.prefix}…){revoked}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def key_new(self) -> str:
        """Give this (unsaved) key its random secret; returns the whole key, of which only
        the hash and the prefix are kept, so it can be shown once."""
        raw = SERVICE_KEY_PREFIX + secrets.token_urlsafe(32)
        self.key_hash, self.prefix = service_key_hash(raw), raw[:PREFIX_LENGTH]
        return raw

    @classmethod
    def generate(cls, *, name: str, **scopes) -> tuple[ServiceKey, str]:
        """Create a key; returns the row and the whole key (shown once). ``events`` (a list
        of Event rows) is set after the save."""
        events = scopes.pop("events", ())
        key = cls(name=name, **scopes)
        raw = key.key_new()
        key.save()
        if events:
            key.events.set(events)
        return key, raw
