from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models

TOKEN_PREFIX = "ntf_"  # noqa: S105 - a prefix, not a secret


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A token a mobile app sends as ``Authorization: Bearer <token>`` to the inbox's JSON API.
    Only its SHA-256 is stored: the token itself is shown once, when it is created."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_tokens"
    )
    name = models.CharField(max_length=100, blank=True, help_text="e.g. the device or app")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="Its first characters")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user}{', ' + self.name if self.name else ''})"

    def key_new(self) -> str:
        """Give this (unsaved) token a new random key; returns the raw key, which only its
        hash and first characters are kept of, so it can be shown once."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.key_hash, self.prefix = token_hash(raw), raw[:10]
        return raw

    @classmethod
    def generate(cls, *, user, name: str = "") -> tuple[ApiToken, str]:
        """Create a token for ``user``; returns the row and the raw token (shown once)."""
        token = cls(user=user, name=name)
        raw = token.key_new()
        token.save()
        return token, raw
