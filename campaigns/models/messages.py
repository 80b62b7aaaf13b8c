from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.db import models
from django.db.models import Q

from campaigns.domain.ids import uuid7
from campaigns.domain.states import ACTIVE, LEASED, TROUBLE, WAITING, MessageStatus


class Message(models.Model):
    """One delivery of one event to one address on one channel: the outbox row, and the audit
    record of what was sent."""

    uuid = models.UUIDField(default=uuid7, unique=True, editable=False)
    event = models.ForeignKey("campaigns.Event", on_delete=models.PROTECT, related_name="messages")
    channel = models.ForeignKey(
        "channels.ChannelConfig", on_delete=models.PROTECT, related_name="messages"
    )
    template = models.ForeignKey(
        "campaigns.Template",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
        db_index=False,  # only a template's deletion asks: not worth a write per row version
    )
    #: The published version it is made with, kept when it is scheduled, retried or sent
    #: again (no index: every index costs on each write of every message; deleting a template
    #: scans the table once).
    template_version = models.ForeignKey(
        "campaigns.TemplateVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
        db_index=False,
    )
    template_key = models.CharField(max_length=300, blank=True, help_text="event/channel/language")
    language = models.CharField(max_length=16, blank=True)
    address = models.CharField(max_length=2048)  # a Web Push subscription can be long
    recipient = models.JSONField(default=dict, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
        db_index=False,  # message_user_inbox_idx leads with user
    )
    context = models.JSONField(default=dict, blank=True)
    subject = models.CharField(max_length=1000, blank=True)
    text = models.TextField(blank=True)
    html = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=MessageStatus.choices, default=MessageStatus.PENDING
    )
    scheduled_at = models.DateTimeField(null=True, blank=True)
    #: Not sent by then, it is cancelled as "expired" (``notify(expires_at=…)``, or the
    #: event's ``expires_after``): a one-time code never goes out late.
    expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=5)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    provider_id = models.CharField(max_length=255, blank=True)
    delivery_status = models.CharField(
        max_length=16,
        blank=True,
        help_text="What the provider reported after sending (delivered, bounced, opened …)",
    )
    delivery_updated_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.CharField(
        max_length=255, blank=True, help_text="Why it was cancelled or skipped"
    )
    tag = models.CharField(max_length=100, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    dedupe_key = models.CharField(
        max_length=300,
        blank=True,
        editable=False,
        help_text="Trigger behaviour key: event, channel, recipient (and content)",
    )
    idempotency_key = models.CharField(max_length=255, blank=True)
    #: A digest's window (``outbox.digests``): event, channel, window end, recipient.
    digest_key = models.CharField(max_length=300, blank=True, editable=False)
    content_type = models.ForeignKey(
        "contenttypes.ContentType",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # message_content_idx leads with content_type
    )
    object_id = models.CharField(max_length=64, blank=True)
    content = GenericForeignKey("content_type", "object_id")
    trigger_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="triggered_notifications",
        db_index=False,  # message_trigger_user_idx: only the rows that have one
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
        db_index=False,  # message_campaign_idx and message_once_per_campaign lead with it
    )
    #: The step of an escalation before this one (README "Fallback and escalation"): this
    #: message waits (``scheduled``) and goes only if that one was not seen (or delivered,
    #: ``escalation_condition``) in time, or at once when that one failed for good.
    escalates_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="escalations",
        db_index=False,  # message_escalation_idx: only the rows that have one
    )
    escalation_condition = models.CharField(
        max_length=16,
        blank=True,
        choices=[("seen", "not seen"), ("delivered", "not delivered")],
        help_text="Goes if the earlier message was … in time",
    )
    seen_at = models.DateTimeField(null=True, blank=True)
    consumed_at = models.DateTimeField(null=True, blank=True)
    #: An inbox item the person put away (``recipients.inbox``): not its delivery state.
    archived_at = models.DateTimeField(null=True, blank=True)
    #: When the retention purge dropped its content (stored bodies and context):
    #: the row stays, as the record that it was sent (``RETENTION_MODE = "content"``).
    content_dropped_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]  # ids grow with time; the primary key orders without an index more
        permissions = [("send_message", "Can send an ad-hoc message to a person")]
        indexes = [
            # The sweep: waiting rows whose time has come.
            models.Index(
                fields=["next_attempt_at"],
                name="message_waiting_due_idx",
                condition=Q(status__in=[s.value for s in WAITING]),
            ),
            # The sweep: queued or sending rows whose lease ran out.
            models.Index(
                fields=["lease_until"],
                name="message_lease_idx",
                condition=Q(status__in=[s.value for s in LEASED]),
            ),
            # The sweep: waiting rows past their expiry (only rows that have one).
            models.Index(
                fields=["expires_at"],
                name="message_expiry_idx",
                condition=Q(expires_at__isnull=False, status__in=[s.value for s in WAITING]),
            ),
            # A user's inbox, newest first.
            models.Index(
                fields=["user", "-created_at"],
                name="message_user_inbox_idx",
                condition=Q(user__isnull=False),
            ),
            # A user's unread count: only the rows it counts are in the index.
            models.Index(
                fields=["user", "channel"],
                name="message_user_unread_idx",
                condition=Q(consumed_at__isnull=True, status="sent", user__isnull=False),
            ),
            # Operators look for what went wrong: only those rows are in the index.
            models.Index(
                fields=["-created_at"],
                name="message_trouble_idx",
                condition=Q(status__in=[s.value for s in TROUBLE]),
            ),
            # (On PostgreSQL, migration 0021 adds a BRIN index on created_at for the
            # dashboards' counts by time: a few pages, and no write per row.)
            models.Index(
                fields=["content_type", "object_id"],
                name="message_content_idx",
                condition=Q(content_type__isnull=False),
            ),
            # Every index is written on each insert and on each change of state, so columns
            # most rows leave empty are indexed only where they are not.
            models.Index(
                fields=["idempotency_key"],
                name="message_idempotency_idx",
                condition=~Q(idempotency_key=""),
            ),
            models.Index(
                fields=["trigger_user"],
                name="message_trigger_user_idx",
                condition=Q(trigger_user__isnull=False),
            ),
            # Provider callbacks (Twilio status, ESP tracking) find a message by its id there.
            models.Index(
                fields=["provider_id"],
                name="message_provider_idx",
                condition=~Q(provider_id=""),
            ),
            # The steps waiting on an earlier message of an escalation.
            models.Index(
                fields=["escalates_from"],
                name="message_escalation_idx",
                condition=Q(escalates_from__isnull=False),
            ),
            # A campaign's progress and report (counts by status, channel, language).
            models.Index(
                fields=["campaign", "status"],
                name="message_campaign_idx",
                condition=Q(campaign__isnull=False),
            ),
        ]
        constraints = [
            # A safety net under the trigger behaviours (notify() checks first, under a lock):
            # one unprocessed message per key, and one sent message per send-once key.
            models.UniqueConstraint(
                fields=["dedupe_key"],
                name="message_one_active_per_key",
                condition=Q(status__in=[s.value for s in ACTIVE])
                & (Q(dedupe_key__startswith="once:") | Q(dedupe_key__startswith="send:")),
            ),
            models.UniqueConstraint(
                fields=["dedupe_key"],
                name="message_one_sent_per_once_key",
                condition=Q(status=MessageStatus.SENT, dedupe_key__startswith="send:"),
            ),
            # One active digest per recipient, channel and window: notify() upserts onto it
            # (INSERT … ON CONFLICT), so concurrent calls add their items to one message.
            models.UniqueConstraint(
                fields=["digest_key"],
                name="message_one_digest_per_window",
                condition=~Q(digest_key="") & Q(status__in=[s.value for s in ACTIVE]),
            ),
            # A recipient gets a campaign at most once per channel, whatever a crashed or
            # repeated fan-out job does.
            models.UniqueConstraint(
                fields=["campaign", "channel", "address"],
                name="message_once_per_campaign",
                condition=Q(campaign__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id}:{self.channel_id} → {self.address} ({self.status})"


class MessageRelatedObject(models.Model):
    """Objects a message is about besides its content (``notify(related_objects=[…])``)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="related")
    content_type = models.ForeignKey("contenttypes.ContentType", on_delete=models.CASCADE)
    object_id = models.CharField(max_length=64)
    content_object = GenericForeignKey("content_type", "object_id")

    class Meta:
        indexes = [models.Index(fields=["content_type", "object_id"], name="related_object_idx")]

    def __str__(self) -> str:
        return f"message {self.message_id} → {self.content_type_id}:{self.object_id}"


class NotifyRequest(models.Model):
    """What one ``notify(idempotency_key=…)`` call did, so repeating it does nothing again."""

    key = models.CharField(max_length=255, unique=True)
    payload_hash = models.CharField(max_length=64)
    skipped = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key


class MessageAttempt(models.Model):
    """One try at delivering a message, and what came of it: the delivery log operators read."""

    message = models.ForeignKey(
        Message,
        on_delete=models.CASCADE,
        related_name="attempt_log",
        db_index=False,  # attempt_message_idx leads with it
    )
    number = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=MessageStatus.choices)
    error = models.TextField(blank=True)
    provider_id = models.CharField(max_length=255, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["message_id", "number", "id"]
        indexes = [models.Index(fields=["message", "number"], name="attempt_message_idx")]

    def __str__(self) -> str:
        return f"message {self.message_id} attempt {self.number}: {self.status}"
