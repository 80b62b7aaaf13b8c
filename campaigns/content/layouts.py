"""Layouts: publish one (the templates that use it get a version with it), see which templates
a layout affects, and preview a layout's draft on each of them.

Publishing a layout does not touch the versions already published: each template that uses
the layout and has a published version gets a new version, with the same content and the new
layout version. Messages already planned keep the version they were made with.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from campaigns.content.versions import PublishError, version_add
from campaigns.domain.composition import Sources, partials_used
from campaigns.domain.rendering import TemplateError, compile_sources
from campaigns.models import Layout, LayoutVersion, Partial, Template, TemplateVersion


def layout_templates(layout: Layout):
    """The templates that use the layout (a selector), with the version each has now."""
    return (
        Template.objects.filter(layout=layout)
        .select_related("event", "channel", "published__layout_version")
        .order_by("event__key", "language")
    )


def layout_draft_sources(layout: Layout, template: Template) -> Sources:
    """The template's published content (else its draft) in the layout's draft: what the
    template will look like once the layout is published."""
    content = (template.published or template).content_sources()
    return Sources(
        **content,
        layout_html=layout.html_body,
        layout_text=layout.text_body,
        partials=dict(Partial.objects.values_list("name", "body")),
    )


def layout_publish(*, layout: Layout, user=None, note: str = "") -> tuple[LayoutVersion, int]:
    """Publish the layout's draft, and give each template that uses it (and is published) a
    version with it. Raises PublishError (nothing written) when the draft is unchanged or a
    template does not compile in it, naming the template. Returns the layout's version and
    how many templates got one."""
    with transaction.atomic():
        layout = (
            Layout.objects.select_for_update(of=("self",))
            .select_related("published")
            .get(pk=layout.pk)
        )
        if layout.published is not None and layout.published.content() == layout.content():
            raise PublishError(f"nothing changed since v{layout.published.number}")
        last = layout.versions.aggregate(last=Max("number"))["last"] or 0
        version = LayoutVersion.objects.create(
            layout=layout,
            number=last + 1,
            published_at=timezone.now(),
            published_by=user if getattr(user, "pk", None) else None,
            **layout.content(),
        )
        layout.published = version
        layout.save(update_fields=["published", "updated_at"])
        available = dict(Partial.objects.values_list("name", "body"))
        templates = (
            Template.objects.select_for_update(of=("self",))
            .filter(layout=layout, published__isnull=False)
            .select_related("published", "event")
        )
        count = 0
        for template in templates:
            published: TemplateVersion = template.published
            # The partials it had keep their source; those only the new layout includes
            # come as they are now.
            sources = Sources(
                **published.content_sources(),
                layout_html=version.html_body,
                layout_text=version.text_body,
                partials={**available, **(published.partials or {})},
            )
            try:
                compile_sources(sources)
            except TemplateError as error:
                raise PublishError(
                    f"{template.key} does not compile in this layout: {error}"
                ) from error
            version_add(
                template,
                content=published.content(),
                layout_version=version,
                partials=partials_used(sources, sources.partials),
                user=user,
                note=f"Layout {layout.name} v{version.number}" + (f": {note}" if note else ""),
            )
            count += 1
    return version, count
