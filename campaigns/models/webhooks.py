"""Outbound status webhooks: URLs operators register to hear what became of messages (sent,
delivered, failed, opened) and of opt-outs, signed per the Standard Webhooks spec.

An endpoint's secret (``whsec_`` + base64 of 24 random bytes) is stored encrypted with the
channel secrets' keys (``NOTIFIER_SECRET_KEYS``). Each event for each subscribed endpoint is
a ``WebhookDelivery`` (its payload fixed when written, so a retry sends the same bytes under
the same ``webhook-id``); each try of it a ``WebhookAttempt``: the delivery log.
"""

from __future__ import annotations

import base64
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from channels.secrets import decrypt_value, encrypt_value

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret


class WebhookEventType(models.TextChoices):
    SENT = "message.sent", "Message sent"
    DELIVERED = "message.delivered", "Message delivered"
    FAILED = "message.failed", "Message failed"
    OPENED = "message.opened", "Message opened"
    OPTED_OUT = "optout.created", "Opted out"
    TEST = "webhook.test", "Test event"


def secret_new() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


class WebhookEndpoint(models.Model):
    url = models.URLField(
        max_length=2000,
        help_text="Where events are POSTed (http or https; private addresses only where "
        "NOTIFIER['WEBHOOK_ALLOW_PRIVATE'] allows them)",
    )
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(
        default=list,
        blank=True,
        help_text="The events it receives; none chosen: all of them",
    )
    secret_encrypted = models.JSONField(default=dict, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["url"]
        verbose_name = "status webhook"

    def __str__(self) -> str:
        return self.description or self.url

    @property
    def secret(self) -> str:
        return decrypt_value(self.secret_encrypted) if self.secret_encrypted else ""

    def secret_rotate(self) -> str:
        """Give the (unsaved) endpoint a new secret; returns it."""
        raw = secret_new()
        self.secret_encrypted = encrypt_value(raw)
        return raw

    def wants(self, event_type: str) -> bool:
        return (
            event_type == WebhookEventType.TEST
            or not self.event_types
            or (event_type in self.event_types)
        )


class WebhookDeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_type = models.CharField(max_length=32, choices=WebhookEventType.choices)
    #: The ``webhook-id`` header: the same on every retry, so a receiver can drop repeats.
    webhook_id = models.CharField(max_length=40, unique=True)
    payload = models.JSONField()
    #: "state", not "status": a message's status has one writer (outbox.transitions).
    state = models.CharField(
        max_length=16,
        choices=WebhookDeliveryStatus.choices,
        default=WebhookDeliveryStatus.PENDING,
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    #: A job holds the row until then; past it, the sweep hands the row out again.
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due_idx",
                condition=Q(state="pending"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint} ({self.get_state_display()})"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        verbose_name = "webhook attempt"

    def __str__(self) -> str:
        return f"#{self.number}: {self.status_code or self.error}"
