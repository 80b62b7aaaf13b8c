from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Decision(models.Model):
    """Why ``notify()`` (or a campaign's chunk) wrote no message for a recipient on a channel:
    the answer to "why didn't she get it" when there is no message to look at.

    Written in bulk (one ``COPY`` per call that skipped anyone), read by the support
    timeline, and purged after ``DECISION_RETENTION_DAYS``. Compact on purpose: the channel
    and the skip reason are kept as text (a channel deleted since still reads), the person as
    their user and an address of theirs (their email, else phone), the call as where in the
    host's code it came from (or the campaign)."""

    created_at = models.DateTimeField()
    event = models.ForeignKey(
        "campaigns.Event", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    channel = models.CharField(max_length=64, help_text="The channel's key")
    reason = models.CharField(max_length=32, help_text="The skip reason notify() returned")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # decision_user_idx leads with it
    )
    address = models.CharField(max_length=2048, blank=True)
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="decisions",
        db_index=False,  # decision_campaign_idx
    )
    call = models.CharField(
        max_length=255, blank=True, help_text="Where the call came from: module:function:line"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["user", "-created_at"],
                name="decision_user_idx",
                condition=Q(user__isnull=False),
            ),
            models.Index(
                fields=["address", "-created_at"],
                name="decision_address_idx",
                condition=~Q(address=""),
            ),
            models.Index(
                fields=["campaign"],
                name="decision_campaign_idx",
                condition=Q(campaign__isnull=False),
            ),
            # The purge deletes the oldest first.
            models.Index(fields=["created_at"], name="decision_created_idx"),
        ]

    def __str__(self) -> str:
        who = self.address or f"user {self.user_id}"
        return f"{who} not sent on {self.channel}: {self.reason}"
