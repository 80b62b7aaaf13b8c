from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.module_loading import import_string

from campaigns.domain.digests import Frequency

# validate_variables stays importable from here: migration 0001 names it by this path.
from campaigns.domain.variables import validate_variables

#: The built-in event of ``notify_text()``'s messages: a text a person wrote, sent without a
#: template (made by migration 0024, and again on first use if it is missing).
ADHOC_EVENT = "adhoc"


class Trigger(models.TextChoices):
    DEFAULT = "default", "A new message every time"
    TRIGGER_ONCE = "trigger_once", "Once while one is pending"
    TRIGGER_ONCE_PER_CONTENT = "trigger_once_per_content", "Once per content while pending"
    SEND_ONCE = "send_once", "Only ever once"
    SEND_ONCE_PER_CONTENT = "send_once_per_content", "Only ever once per content"
    LAST_ONLY = "last_only", "Only the latest (cancels pending ones)"


class UnsubscribeScope(models.TextChoices):
    EVENT = "event", "This event on this channel"
    MARKETING = "marketing", "Every marketing event"


class Event(models.Model):
    """Something that happened in the host site, with the context variables it provides."""

    key = models.SlugField(max_length=100, unique=True, help_text="Used in code: notify(key, …)")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    variables = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_variables],
        help_text='[{"name": "order_id", "label": "Order", "help": "…", "sample": "A-1001"}]',
    )
    default_language = models.CharField(
        max_length=16, blank=True, help_text="Fallback language (default: the site's language)"
    )
    is_active = models.BooleanField(default=True)
    trigger = models.CharField(
        max_length=32,
        choices=Trigger.choices,
        default=Trigger.DEFAULT,
        help_text="What a new trigger does when the recipient already has messages of this event",
    )
    delete_after_processing = models.BooleanField(
        default=False, help_text="Delete messages once sent (failed ones stay for inspection)"
    )
    digest = models.CharField(
        max_length=16,
        choices=Frequency.choices,
        default=Frequency.IMMEDIATELY,
        help_text="Collect its occurrences for a recipient on a channel into one message per "
        "window; the template gets {{ digest.items }} (each occurrence's context) and "
        "{{ digest.count }}",
    )
    digest_at = models.TimeField(
        "daily digest at",
        default=dt.time(9, 0),
        help_text="When a daily digest goes out, in the recipient's timezone",
    )
    digest_choice = models.BooleanField(
        "people choose how often",
        default=False,
        help_text="The preference centre offers immediately / hourly / daily for it (the "
        "event must be user-configurable or mandatory to be shown there)",
    )
    expires_after = models.DurationField(
        null=True,
        blank=True,
        help_text="A message not sent this long after it was written is cancelled as "
        "expired (e.g. 00:10:00 for a one-time code); notify(expires_at=…) overrides it. "
        "Empty: never expires",
    )
    check_validity = models.CharField(
        max_length=255,
        blank=True,
        help_text="Dotted path of a callable(message) -> bool run just before sending; "
        "False cancels the message as no longer valid",
    )
    user_configurable = models.BooleanField(
        default=False,
        help_text="Shown in the preference centre, where people turn it off per channel",
    )
    mandatory = models.BooleanField(
        default=False,
        help_text="Cannot be turned off (e.g. password reset): shown in the preference centre "
        "as always on; its emails' unsubscribe link turns off marketing instead",
    )
    mandatory_reason = models.CharField(
        "why it is required",
        max_length=255,
        blank=True,
        help_text="Shown in the preference centre beside a mandatory event, e.g. 'Security "
        "notices about your account cannot be turned off.'",
    )
    marketing = models.BooleanField(
        default=False, help_text="Promotional: text emails get an unsubscribe footer line"
    )
    unsubscribe_scope = models.CharField(
        max_length=16,
        choices=UnsubscribeScope.choices,
        default=UnsubscribeScope.EVENT,
        help_text="What the one-click unsubscribe link of its emails turns off",
    )
    declared_in = models.CharField(max_length=255, blank=True, editable=False)
    declared = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="The declaration last synced from code; admin edits stand until it changes",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.name or self.key

    @property
    def digested(self) -> bool:
        """Whether its occurrences may be collected into digests: a frequency of its own, or
        one its recipients may choose."""
        return self.digest != Frequency.IMMEDIATELY or self.digest_choice

    @property
    def variable_names(self) -> list[str]:
        return [variable["name"] for variable in self.variables]

    @property
    def required_variables(self) -> list[str]:
        return [v["name"] for v in self.variables if v.get("required", True)]

    def clean(self) -> None:
        for name in ("description", "default_language", "check_validity"):  # imports give None
            setattr(self, name, getattr(self, name) or "")
        if self.check_validity:
            try:
                func = import_string(self.check_validity)
            except ImportError as error:
                raise ValidationError({"check_validity": f"cannot import: {error}"}) from None
            if not callable(func):
                raise ValidationError({"check_validity": f"{self.check_validity} is not callable"})

    def sample_context(self) -> dict[str, Any]:
        return {v["name"]: v.get("sample", "") for v in self.variables}


class EscalationStep(models.Model):
    """A later step of the event's escalation (README "Fallback and escalation"): a trigger
    of the event that does not say ``then=`` sends on its first channels, then on this one if
    that was not seen (or not delivered) within ``delay_minutes`` of the call."""

    CONDITIONS = [("seen", "not seen"), ("delivered", "not delivered")]

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="escalation_steps")
    position = models.PositiveSmallIntegerField(default=1, help_text="Steps go in this order")
    channel = models.ForeignKey(
        "channels.ChannelConfig", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    delay_minutes = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(30 * 24 * 60)],
        help_text="Minutes after the trigger (at most 30 days); each step at least as late as "
        "the one before",
    )
    condition = models.CharField(
        max_length=16,
        choices=CONDITIONS,
        default="seen",
        help_text="Goes if the step before was … by then",
    )

    class Meta:
        ordering = ["event_id", "position", "id"]
        verbose_name = "escalation step"
        constraints = [
            models.UniqueConstraint(fields=["event", "channel"], name="escalation_step_unique")
        ]

    def __str__(self) -> str:
        return f"then {self.channel_id} after {self.delay_minutes} min if {self.condition}"
