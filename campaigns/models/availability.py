from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from campaigns.domain.windows import Window, describe, weekdays_validate


def all_weekdays() -> list[int]:
    return [0, 1, 2, 3, 4, 5, 6]


class AvailabilityWindow(models.Model):
    """Hours in which an event or a channel may deliver, read in the recipient's timezone.

    It opens on each listed weekday at ``start_time`` and closes at ``end_time`` that day, or
    the next day when ``end_time <= start_time`` (22:00-02:00 crosses midnight; equal times
    mean 24 hours). A message is delivered inside both its event's and its channel's windows
    (``campaigns.domain.windows``)."""

    event = models.ForeignKey(
        "campaigns.Event", null=True, blank=True, on_delete=models.CASCADE, related_name="windows"
    )
    channel = models.ForeignKey(
        "channels.ChannelConfig",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="windows",
    )
    weekdays = models.JSONField(
        default=all_weekdays,
        blank=True,  # so clean() says what is wrong with an empty list
        help_text="Day numbers: 0 = Monday … 6 = Sunday, e.g. [0, 1, 2, 3, 4]",
    )
    start_time = models.TimeField(help_text="Opens at this time, in the recipient's timezone")
    end_time = models.TimeField(
        help_text="Closes at this time; at or before the start time means the next day"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["start_time", "id"]
        verbose_name = "availability window"
        constraints = [
            models.CheckConstraint(
                condition=Q(event__isnull=False, channel__isnull=True)
                | Q(event__isnull=True, channel__isnull=False),
                name="availability_window_event_xor_channel",
                violation_error_message="A window belongs to an event or to a channel: "
                "set exactly one of them.",
            )
        ]

    def __str__(self) -> str:
        try:
            return describe([Window.from_model(self)])
        except (ValueError, TypeError):
            return f"{self.weekdays} {self.start_time}-{self.end_time} (invalid)"

    def clean(self) -> None:
        try:
            self.weekdays = sorted(weekdays_validate(self.weekdays))
        except ValueError as error:
            raise ValidationError({"weekdays": str(error)}) from None
