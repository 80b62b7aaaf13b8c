from __future__ import annotations

from django.db import models
from django.db.models import Q

from campaigns.domain.states import MessageStatus


class MessageDayCount(models.Model):
    """How many messages the retention purge deleted, per day, event, channel, language,
    state and campaign: what the dashboard and the campaign reports add to the live rows, so
    their totals do not drop after a purge (README "Retention").

    ``day`` is the day the messages were written (the dashboard's windows count by it);
    ``done_day`` the day they were sent (``sent_at``) or last changed (``updated_at``): the
    day the dashboard's chart puts a sent or failed message on. Event and channel are kept as
    their keys, so a count outlives an event or a channel deleted since."""

    day = models.DateField()
    done_day = models.DateField()
    event = models.CharField(max_length=100, help_text="The event's key")
    channel = models.CharField(max_length=64, help_text="The channel's key")
    language = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=16, choices=MessageStatus.choices)
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # daycount_campaign_idx: only the rows that have one
    )
    count = models.PositiveBigIntegerField()

    class Meta:
        ordering = ["-day", "event", "channel", "status"]
        verbose_name = "daily message count"
        verbose_name_plural = "daily message counts (purged messages)"
        constraints = [
            # The purge adds to a row with INSERT … ON CONFLICT on this key.
            models.UniqueConstraint(
                fields=["day", "done_day", "event", "channel", "language", "status", "campaign"],
                name="daycount_key",
                nulls_distinct=False,
            )
        ]
        indexes = [
            models.Index(
                fields=["campaign"],
                name="daycount_campaign_idx",
                condition=Q(campaign__isnull=False),
            ),
            models.Index(fields=["done_day"], name="daycount_done_day_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.event} on {self.channel}: {self.count} {self.status}"
