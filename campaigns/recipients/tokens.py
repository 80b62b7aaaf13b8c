"""API tokens for the inbox's JSON API (``Authorization: Bearer <token>``)."""

from __future__ import annotations

from django.utils import timezone

from campaigns.models import ApiToken
from campaigns.models.tokens import token_hash


def api_token_user(raw: str):
    """The active user an active token belongs to, or None. Records when it was last used."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=token_hash(raw.strip()), is_active=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
