from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F

from campaigns.domain.rendering import TemplateError, template_compile


class Template(models.Model):
    """What an event looks like on one channel in one language."""

    event = models.ForeignKey("campaigns.Event", on_delete=models.CASCADE, related_name="templates")
    channel = models.ForeignKey(
        "channels.ChannelConfig", on_delete=models.CASCADE, related_name="templates"
    )
    language = models.CharField(max_length=16, help_text="e.g. en, de, pt-br")
    subject = models.CharField(max_length=500, blank=True)
    text_body = models.TextField(blank=True, help_text="Plain text; rendered without escaping")
    html_body = models.TextField(
        blank=True,
        help_text="MJML (a document starting with the mjml tag) or HTML; rendered with escaping",
    )
    slug = models.SlugField(
        max_length=100,
        blank=True,
        help_text="Optional: address this template directly with send_template(…, slug, …)",
    )
    is_active = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event__key", "channel__key", "language"]
        permissions = [("send_test", "Can send test messages")]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "channel", "language"], name="template_unique_event_channel_lang"
            ),
            models.UniqueConstraint(
                fields=["slug"], condition=~models.Q(slug=""), name="template_unique_slug"
            ),
        ]

    def __str__(self) -> str:
        return self.key

    def save(self, *args, update_fields=None, **kwargs) -> None:
        # Every save is a new version: compiled templates are cached per (id, version).
        if self.pk is not None:
            self.version = F("version") + 1
            if update_fields is not None:
                update_fields = {*update_fields, "version"}
        super().save(*args, update_fields=update_fields, **kwargs)
        if hasattr(self.version, "resolve_expression"):
            self.refresh_from_db(fields=["version"])

    @property
    def key(self) -> str:
        return f"{self.event.key}/{self.channel.key}/{self.language}"

    def clean(self) -> None:
        self.language = (self.language or "").strip().lower()
        for name in ("subject", "text_body", "html_body", "slug"):  # imports may give None
            setattr(self, name, getattr(self, name) or "")
        try:
            template_compile(self)
        except TemplateError as error:
            raise ValidationError({error.field or "text_body": str(error)}) from error
