from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

#: The kinds of channel an end user knows (a backend's ``category``): what the preference
#: centre offers and a kind-wide opt-out names. Other categories (webhook, social, other)
#: are the operators' and never shown to people.
PERSON_KINDS = {
    "email": "Email",
    "sms": "SMS",
    "push": "Push notifications",
    "chat": "Chat apps",
    "inbox": "In-app inbox",
}


class OptOutQuerySet(models.QuerySet):
    def active(self) -> OptOutQuerySet:
        """Opt-outs in force: not revoked. Revoked ones stay as the consent record."""
        return self.filter(revoked_at__isnull=True)


class OptOut(models.Model):
    """A person's refusal of everything, a kind of channel (every email channel), a channel,
    an event, or an event on a kind of channel or on one channel.

    It matches a user (any of their addresses) or one address. Leaving channel, kind and
    event empty refuses everything. An opt-out is never deleted when turned back on: it is
    *revoked* (``revoked_at``, ``revoked_by``, ``revoked_source``), so who refused what, when
    and how — and when they changed their mind — stays on record.
    """

    class Scope(models.TextChoices):
        ALL = "all", "Everything"
        KIND = "kind", "One kind of channel"
        CHANNEL = "channel", "One channel"
        EVENT = "event", "One event"
        EVENT_KIND = "event_kind", "One event on one kind of channel"
        EVENT_CHANNEL = "event_channel", "One event on one channel"
        MARKETING = "marketing", "Every marketing event"

    class Source(models.TextChoices):
        LINK = "link", "Unsubscribe link"
        PREFERENCES = "preferences", "Preference centre"
        BOUNCE = "bounce", "Bounce or complaint"
        OPERATOR = "operator", "Operator"
        API = "api", "HTTP API (a service key)"

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
    kind = models.CharField(
        max_length=16,
        blank=True,
        choices=list(PERSON_KINDS.items()),
        help_text="Every channel of this kind (e.g. every email channel); not with a channel",
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
    source = models.CharField(
        max_length=16,
        choices=Source.choices,
        default=Source.OPERATOR,
        help_text="How it was made: a link, the preference centre, a bounce, an operator, "
        "the HTTP API",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who made it, when signed in (the person, or an operator)",
    )
    # Not auto_now_add: an opt-out imported from another site keeps when it was made.
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was turned back on; empty while in force"
    )
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_source = models.CharField(max_length=16, choices=Source.choices, blank=True)

    objects = OptOutQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "opt-out"
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False) | ~Q(address=""), name="optout_user_or_address"
            ),
            models.CheckConstraint(
                condition=Q(channel__isnull=True) | Q(kind=""),
                name="optout_channel_or_kind",
                violation_error_message="An opt-out names one channel or one kind of channel, "
                "not both.",
            ),
        ]

    def __str__(self) -> str:
        who = self.address or f"user {self.user_id}"
        revoked = " (revoked)" if self.revoked_at else ""
        return f"{who}: {self.get_scope_display()}{revoked}"

    def save(self, *args, **kwargs) -> None:
        self.address = (self.address or "").strip().lower()
        super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def scope(self) -> str:
        if self.marketing:
            return self.Scope.MARKETING
        if self.event_id and self.channel_id:
            return self.Scope.EVENT_CHANNEL
        if self.event_id and self.kind:
            return self.Scope.EVENT_KIND
        if self.event_id:
            return self.Scope.EVENT
        if self.channel_id:
            return self.Scope.CHANNEL
        if self.kind:
            return self.Scope.KIND
        return self.Scope.ALL

    def get_scope_display(self) -> str:
        return self.Scope(self.scope).label

    def matches(
        self, *, event_id: int, channel_id: int, kind: str = "", marketing: bool = False
    ) -> bool:
        """Whether this opt-out, when in force, refuses ``event_id`` on the channel
        ``channel_id`` whose backend's category is ``kind``."""
        return (
            self.revoked_at is None
            and (self.event_id in (None, event_id))
            and (self.channel_id in (None, channel_id))
            and (self.kind in ("", kind))
            and (marketing or not self.marketing)
        )
