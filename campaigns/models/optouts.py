from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class OptOut(models.Model):
    """A person's refusal of everything, a channel, an event, or an event on a channel.

    It matches a user (any of their addresses) or one address. Leaving channel and event
    empty refuses everything.
    """

    class Scope(models.TextChoices):
        ALL = "all", "Everything"
        CHANNEL = "channel", "One channel"
        EVENT = "event", "One event"
        EVENT_CHANNEL = "event_channel", "One event on one channel"
        MARKETING = "marketing", "Every marketing event"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_optouts",
    )
    address = models.CharField(max_length=512, blank=True, db_index=True)
    channel = models.ForeignKey(
        "channels.ChannelConfig",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="optouts",
    )
    event = models.ForeignKey(
        "campaigns.Event", null=True, blank=True, on_delete=models.CASCADE, related_name="optouts"
    )
    marketing = models.BooleanField(
        default=False,
        help_text="Only events marked marketing, including ones added later (the scope of "
        "'unsubscribe from all marketing')",
    )
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "opt-out"
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False) | ~Q(address=""), name="optout_user_or_address"
            )
        ]

    def __str__(self) -> str:
        who = self.address or f"user {self.user_id}"
        return f"{who}: {self.get_scope_display()}"

    def save(self, *args, **kwargs) -> None:
        self.address = (self.address or "").strip().lower()
        super().save(*args, **kwargs)

    @property
    def scope(self) -> str:
        if self.marketing:
            return self.Scope.MARKETING
        if self.event_id and self.channel_id:
            return self.Scope.EVENT_CHANNEL
        if self.event_id:
            return self.Scope.EVENT
        if self.channel_id:
            return self.Scope.CHANNEL
        return self.Scope.ALL

    def get_scope_display(self) -> str:
        return self.Scope(self.scope).label

    def matches(self, *, event_id: int, channel_id: int, marketing: bool = False) -> bool:
        return (
            (self.event_id in (None, event_id))
            and (self.channel_id in (None, channel_id))
            and (marketing or not self.marketing)
        )
