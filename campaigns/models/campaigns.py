"""Campaigns: an operator-run broadcast of one event to an audience.

An Audience says who (all active users, a group, an imported contact list, a saved filter
over users); a Campaign says what (event, channels, context), when (now, later, or at a time
of day in each recipient's timezone) and keeps its state; CampaignChunk rows are the units
of its resumable fan-out (one RQ job each, written in one transaction with its messages).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from campaigns.models.profiles import validate_timezone
from channels.addresses import validate_phone


class AudienceKind(models.TextChoices):
    ALL_USERS = "all_users", "All active users"
    GROUP = "group", "Users in a group"
    CONTACTS = "contacts", "Imported contact list"
    FILTER = "filter", "Saved filter over users"


class Audience(models.Model):
    """Who a campaign goes to. A saved filter is a set of typed conditions over active users
    (no free-form lookups), so an operator cannot reach fields they should not."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=AudienceKind.choices)
    description = models.TextField(blank=True)
    group = models.ForeignKey(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="For 'Users in a group'",
    )
    # The saved filter (every condition set must hold).
    joined_after = models.DateField(null=True, blank=True)
    joined_before = models.DateField(null=True, blank=True)
    logged_in_since = models.DateField(null=True, blank=True)
    email_domain = models.CharField(
        max_length=200, blank=True, help_text="e.g. example.com (without @)"
    )
    language = models.CharField(
        max_length=16, blank=True, help_text="Users whose profile language is this"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == AudienceKind.GROUP and self.group_id is None:
            raise ValidationError({"group": "Choose the group this audience sends to."})
        if self.kind != AudienceKind.GROUP:
            self.group = None
        filters = (
            self.joined_after,
            self.joined_before,
            self.logged_in_since,
            self.email_domain,
            self.language,
        )
        if self.kind == AudienceKind.FILTER and not any(filters):
            raise ValidationError("A saved filter needs at least one condition.")
        if self.kind != AudienceKind.FILTER and any(filters):
            raise ValidationError("Filter conditions apply to a 'Saved filter' audience only.")
        if self.joined_after and self.joined_before and self.joined_after > self.joined_before:
            raise ValidationError({"joined_before": "Must be after 'joined after'."})
        self.email_domain = self.email_domain.strip().lstrip("@").lower()


class Contact(models.Model):
    """A person in an imported contact list. Extra columns of the import are kept in
    ``data`` and reach templates as ``{{ recipient.<column> }}``."""

    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="contacts")
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    name = models.CharField(max_length=200, blank=True)
    language = models.CharField(max_length=16, blank=True)
    tz = models.CharField("timezone", max_length=64, blank=True, validators=[validate_timezone])
    data = models.JSONField(default=dict, blank=True, help_text="Extra columns of the import")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["audience_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["audience", "email"],
                condition=~Q(email=""),
                name="contact_unique_email_per_list",
            ),
            models.UniqueConstraint(
                fields=["audience", "phone"],
                condition=~Q(phone=""),
                name="contact_unique_phone_per_list",
            ),
        ]

    def __str__(self) -> str:
        return self.email or self.phone or f"contact {self.pk}"

    def clean(self) -> None:
        if not self.email and not self.phone:
            raise ValidationError("A contact needs an email or a phone number.")
        if self.phone:  # kept in E.164, as SMS channels send and deactivate numbers
            try:
                self.phone = validate_phone(self.phone)
            except ValidationError as error:
                raise ValidationError({"phone": error.messages}) from None


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    RUNNING = "running", "Sending"
    PAUSED = "paused", "Paused"
    CANCELLED = "cancelled", "Cancelled"
    DONE = "done", "Done"


class Campaign(models.Model):
    name = models.CharField(max_length=200)
    event = models.ForeignKey("campaigns.Event", on_delete=models.PROTECT, related_name="+")
    channels = models.ManyToManyField(
        "channels.ChannelConfig",
        blank=True,
        related_name="+",
        help_text="Leave empty for every active channel the event has templates for.",
    )
    audience = models.ForeignKey(Audience, on_delete=models.PROTECT, related_name="campaigns")
    context = models.JSONField(
        default=dict, blank=True, help_text="Values for the event's variables"
    )
    send_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: as soon as it is started."
    )
    local_time = models.TimeField(
        null=True,
        blank=True,
        help_text="Deliver at this time of day in each recipient's timezone, on the day of "
        "'send at' (e.g. 09:00). Recipients for whom it has passed get it at once.",
    )
    status = models.CharField(
        max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    status_reason = models.CharField(
        max_length=500, blank=True, help_text="Why it was paused when the site paused it"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    #: The template versions it was started with, {template id: version id}: its messages are
    #: made with these, whatever is published after.
    template_versions = models.JSONField(default=dict, blank=True, editable=False)
    #: Recipients found in the audience when the fan-out was planned.
    recipients_total = models.PositiveIntegerField("recipients", default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("run_campaign", "Can start, pause, resume and cancel campaigns")]
        indexes = [
            models.Index(
                fields=["send_at"],
                name="campaign_due_idx",
                condition=Q(status="scheduled"),
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_editable(self) -> bool:
        return self.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)


class ChunkStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class CampaignChunk(models.Model):
    """A slice of the audience (source ids ``first_id``..``last_id``) fanned out by one job.

    A job locks its chunk row and writes the chunk's messages and ``status=done`` in one
    transaction: a crash rolls both back, and the sweep re-enqueues pending chunks."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    size = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=ChunkStatus.choices, default=ChunkStatus.PENDING
    )
    written = models.PositiveIntegerField(default=0)
    #: {"reason": count} for the recipients and channels it did not write.
    skipped = models.JSONField(default=dict, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "number"], name="campaign_chunk_unique")
        ]
        indexes = [
            models.Index(
                fields=["enqueued_at"],
                name="campaign_chunk_pending_idx",
                condition=Q(status="pending"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} #{self.number} ({self.status})"
