from __future__ import annotations

from django.conf import settings
from django.db import models


class ChannelAddress(models.Model):
    """An address a person can be reached at, beyond the user's email: a phone number, a push
    token, a chat id … ``kind`` is the recipient key the backends read (``phone``,
    ``push_token``, ``chat_id``, ``email``). An inactive address gets nothing: a provider
    answer that says the address is dead deactivates it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_addresses",
    )
    kind = models.CharField(max_length=32, help_text="The recipient key: phone, push_token …")
    address = models.CharField(max_length=2048)  # a Web Push subscription can be long
    is_active = models.BooleanField(default=True)
    is_verified = models.BooleanField(default=False)
    deactivated_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user_id", "kind"]
        verbose_name = "channel address"
        verbose_name_plural = "channel addresses"
        constraints = [
            models.UniqueConstraint(fields=["kind", "address"], name="channel_address_unique")
        ]
        indexes = [models.Index(fields=["user", "kind"], name="channel_address_user_idx")]

    def __str__(self) -> str:
        state = "" if self.is_active else " (inactive)"
        return f"{self.kind}: {self.address}{state}"
