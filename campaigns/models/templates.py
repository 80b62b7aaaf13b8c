"""Templates, their published versions, layouts and partials.

A ``Template`` row is what an event looks like on one channel in one language: its identity
(event, channel, language, slug) and its **draft**, which operators edit. Publishing copies the
draft into a ``TemplateVersion``, numbered and immutable, with the layout version and the
partials it was published with; messages are made from the published version and keep it
(scheduled, retried and sent again), so an edit changes nothing already planned. A
``Layout`` (the shared header and footer of a channel's templates) and its versions work the
same way; a ``Partial`` is a named snippet templates include, kept in each version that uses
it.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from campaigns.domain.composition import (
    COLUMNS,
    PARTIAL_NAME,
    CompositionError,
    Sources,
    layout_check,
    partials_used,
)
from campaigns.domain.preview import field_problems
from campaigns.domain.rendering import TemplateError, compile_sources, template_render
from channels.backends.fields import ALL_FIELDS
from channels.registry import UnknownBackend

#: The columns of a template's content, draft or published.
CONTENT_COLUMNS = tuple(COLUMNS.values())


class TemplateContent(models.Model):
    """The fields of a template, as its draft and as each published version holds them."""

    subject = models.CharField(max_length=500, blank=True)
    preheader = models.CharField(
        max_length=500, blank=True, help_text="Shown by inbox lists after the subject"
    )
    text_body = models.TextField(blank=True, help_text="Plain text; rendered without escaping")
    html_body = models.TextField(
        blank=True,
        help_text="MJML (a document starting with the mjml tag) or HTML; rendered with escaping",
    )
    link = models.CharField(max_length=2000, blank=True, help_text="Push: opened on tap")
    image = models.CharField(max_length=2000, blank=True, help_text="Push: an image URL")
    json_body = models.TextField(blank=True, help_text="Webhooks: a JSON document")

    class Meta:
        abstract = True

    def content(self) -> dict[str, str]:
        return {column: getattr(self, column) for column in CONTENT_COLUMNS}

    def content_sources(self) -> dict[str, str]:
        """The content by template field name (``Sources``' keywords)."""
        return {name: getattr(self, column) for name, column in COLUMNS.items()}


class Template(TemplateContent):
    """What an event looks like on one channel in one language: the draft operators edit, and
    the version published last (``published``), from which messages are made."""

    event = models.ForeignKey("campaigns.Event", on_delete=models.CASCADE, related_name="templates")
    channel = models.ForeignKey(
        "channels.ChannelConfig", on_delete=models.CASCADE, related_name="templates"
    )
    language = models.CharField(max_length=16, help_text="e.g. en, de, pt-br")
    layout = models.ForeignKey(
        "campaigns.Layout",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="templates",
        help_text="The shared header and footer this template fills (its content block)",
    )
    slug = models.SlugField(
        max_length=100,
        blank=True,
        help_text="Optional: address this template directly with send_template(…, slug, …)",
    )
    is_active = models.BooleanField(default=True)
    published = models.ForeignKey(
        "campaigns.TemplateVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        help_text="The version messages are made from; none: never published, not sent",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event__key", "channel__key", "language"]
        permissions = [
            ("send_test", "Can send test messages"),
            ("publish_template", "Can publish templates and roll them back"),
        ]
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
        # The published version moves only where a service names it (publish, roll back): a
        # draft saved from an older copy of the row must not move it back.
        if update_fields is None and not self._state.adding:
            update_fields = _all_but(self, "published")
        super().save(*args, update_fields=update_fields, **kwargs)

    @property
    def key(self) -> str:
        return f"{self.event.key}/{self.channel.key}/{self.language}"

    def template_fields(self):
        """The channel's template fields (what its backend sends); all of them when the
        channel's backend cannot be loaded."""
        try:
            return self.channel.backend_class.template_fields
        except UnknownBackend:  # its module is gone: every field rather than none
            return ALL_FIELDS

    def sources(self, *, partials: Mapping[str, str] | None = None, layout_version=None) -> Sources:
        """The draft's sources: with ``layout_version`` (default: its layout's published
        version, else the layout's draft) and ``partials`` (default: every partial)."""
        if partials is None:
            partials = dict(Partial.objects.values_list("name", "body"))
        layout = layout_version
        if layout is None and self.layout_id is not None:
            layout = self.layout.published or self.layout
        return Sources(
            **self.content_sources(),
            layout_html=layout.html_body if layout else "",
            layout_text=layout.text_body if layout else "",
            partials=partials,
        )

    def clean(self) -> None:
        self.language = (self.language or "").strip().lower()
        for name in (*CONTENT_COLUMNS, "slug"):  # imports may give None
            setattr(self, name, getattr(self, name) or "")
        if self.layout_id and self.channel_id and self.layout.channel_id != self.channel_id:
            raise ValidationError({"layout": "This layout belongs to another channel."})
        if not self.event_id or not self.channel_id:
            return  # the form names the missing event or channel
        sources = self.sources()
        try:
            compiled = compile_sources(sources)
            rendered = template_render(
                compiled, {**self.event.sample_context(), "recipient": SAMPLE_RECIPIENT}
            )
        except TemplateError as error:
            column = error.field if error.field in CONTENT_COLUMNS else None
            raise ValidationError({column: str(error)} if column else str(error)) from error
        problems: dict[str, list[str]] = {}
        for column, problem in field_problems(rendered, sources, self.template_fields()):
            problems.setdefault(column, []).append(problem)
        if problems:
            raise ValidationError(problems)

    @property
    def has_unpublished_changes(self) -> bool:
        published = self.published
        if published is None:
            return True
        return published.content() != self.content() or published.layout_id != self.layout_id


#: The sample recipient templates are checked with on save (the preview's).
SAMPLE_RECIPIENT = {
    "name": "Ann Example",
    "email": "ann@example.com",
    "language": "en",
    "tz": "Europe/Berlin",
}


class TemplateVersion(TemplateContent):
    """A published template: numbered, never changed. Messages point at the version they
    were made with."""

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    #: The layout it was published with (its version), kept as it was then.
    layout_version = models.ForeignKey(
        "campaigns.LayoutVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="template_versions",
    )
    #: The partials it includes, as they were when it was published: {name: source}.
    partials = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=300, blank=True, help_text="What changed, and why")
    published_at = models.DateTimeField()
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["template_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="template_version_unique")
        ]

    def __str__(self) -> str:
        return f"v{self.number}"

    @property
    def layout_id(self) -> int | None:
        return self.layout_version.layout_id if self.layout_version_id else None

    def sources(self) -> Sources:
        layout = self.layout_version
        return Sources(
            **self.content_sources(),
            layout_html=layout.html_body if layout else "",
            layout_text=layout.text_body if layout else "",
            partials=self.partials or {},
        )


class LayoutContent(models.Model):
    html_body = models.TextField(
        blank=True,
        help_text="MJML or HTML around the templates: {% block content %}{% endblock %} is "
        "where each template's body goes",
    )
    text_body = models.TextField(
        blank=True,
        help_text="Text around the templates' text: {% block content %}{% endblock %} is where "
        "it goes (empty: the text as it is)",
    )

    class Meta:
        abstract = True

    def content(self) -> dict[str, str]:
        return {"html_body": self.html_body, "text_body": self.text_body}


class Layout(LayoutContent):
    """The shared header, footer and branding of a channel's templates: the draft, and the
    version published last."""

    name = models.CharField(max_length=100, unique=True)
    channel = models.ForeignKey(
        "channels.ChannelConfig", on_delete=models.CASCADE, related_name="layouts"
    )
    is_default = models.BooleanField(
        default=False, help_text="New templates of the channel start with this layout"
    )
    published = models.ForeignKey(
        "campaigns.LayoutVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["channel__key", "name"]
        permissions = [("publish_layout", "Can publish layouts")]
        constraints = [
            models.UniqueConstraint(
                fields=["channel"], condition=Q(is_default=True), name="layout_one_default"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, update_fields=None, **kwargs) -> None:
        if update_fields is None and not self._state.adding:  # as Template.save()
            update_fields = _all_but(self, "published")
        super().save(*args, update_fields=update_fields, **kwargs)

    def clean(self) -> None:
        self.html_body, self.text_body = self.html_body or "", self.text_body or ""
        for column in ("html_body", "text_body"):
            source = getattr(self, column)
            try:
                if source.strip():
                    layout_check(source, what="a layout")
            except CompositionError as error:
                raise ValidationError({column: str(error)}) from error
        partials = dict(Partial.objects.values_list("name", "body"))
        try:
            compile_sources(
                Sources(
                    html="<mj-section></mj-section>" if self.html_body.strip() else "",
                    text="text",
                    layout_html=self.html_body,
                    layout_text=self.text_body,
                    partials=partials,
                )
            )
        except TemplateError as error:
            raise ValidationError(str(error)) from error

    @property
    def has_unpublished_changes(self) -> bool:
        return self.published is None or self.published.content() != self.content()


def _all_but(instance: models.Model, name: str) -> list[str]:
    return [f.name for f in instance._meta.concrete_fields if not f.primary_key and f.name != name]


class LayoutVersion(LayoutContent):
    layout = models.ForeignKey(Layout, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    published_at = models.DateTimeField()
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["layout_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["layout", "number"], name="layout_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.layout.name} v{self.number}"


class Partial(models.Model):
    """A named snippet templates include: ``{% include "footer" %}``. A published template
    keeps the partials it includes as they were."""

    name = models.SlugField(
        max_length=100, unique=True, help_text='Included as {% include "name" %}'
    )
    description = models.CharField(max_length=300, blank=True)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        self.name = (self.name or "").strip()
        if not PARTIAL_NAME.match(self.name):
            raise ValidationError({"name": "Letters, digits, dots, dashes and underscores."})
        partials = dict(Partial.objects.exclude(pk=self.pk).values_list("name", "body"))
        partials[self.name] = self.body or ""
        try:
            compile_sources(Sources(text=f'{{% include "{self.name}" %}}', partials=partials))
        except TemplateError as error:
            raise ValidationError({"body": str(error)}) from error


def partials_snapshot(sources: Sources) -> dict[str, str]:
    """The partials a version keeps: those its sources include, as they are now."""
    return partials_used(sources, sources.partials)
