from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from campaigns.domain.digests import CHOOSABLE, Frequency


class DigestItem(models.Model):
    """One occurrence of a digested event, in the window its message collects: the message is
    the outbox row, written (or found) in the same transaction as its items, and it reads them
    all when it is rendered."""

    message = models.ForeignKey(
        "campaigns.Message", on_delete=models.CASCADE, related_name="digest_items"
    )
    context = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["message_id", "created_at", "id"]

    def __str__(self) -> str:
        return f"digest item of message {self.message_id}"


class DigestPreference(models.Model):
    """How often a person wants an event whose digests they may choose: a user's, or (through
    a signed preference link) an address's."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # the unique constraint leads with it
    )
    address = models.CharField(max_length=2048, blank=True)
    event = models.ForeignKey("campaigns.Event", on_delete=models.CASCADE, related_name="+")
    frequency = models.CharField(
        max_length=16,
        choices=[(f.value, f.label) for f in CHOOSABLE],
        default=Frequency.IMMEDIATELY,
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "event"],
                name="digest_preference_per_user",
                condition=Q(user__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["address", "event"],
                name="digest_preference_per_address",
                condition=Q(user__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id or self.address}: {self.event_id} {self.frequency}"
