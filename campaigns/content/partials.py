"""Partials: which templates include one, and giving the published ones a version with its
current source (a published version keeps the partials as they were when it was published)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from campaigns.content.versions import PublishError, version_add
from campaigns.domain.composition import Sources, included_names, partials_used
from campaigns.domain.rendering import TemplateError, compile_sources
from campaigns.models import Layout, Partial, Template
from campaigns.models.templates import CONTENT_COLUMNS


def _includes(name: str, sources: list[str], partials: dict[str, str]) -> bool:
    pending, seen = [n for s in sources for n in included_names(s)], set()
    while pending:
        current = pending.pop()
        if current == name:
            return True
        if current not in seen and current in partials:
            seen.add(current)
            pending.extend(included_names(partials[current]))
    return False


def partial_templates(partial: Partial) -> list[Template]:
    """The templates whose draft, layout or published version includes the partial (directly
    or through another partial)."""
    partials = dict(Partial.objects.values_list("name", "body"))
    mention = Q()
    for column in CONTENT_COLUMNS:
        mention |= Q(**{f"{column}__contains": "include"})
    layouts = [
        layout.pk
        for layout in Layout.objects.all()
        if _includes(partial.name, [layout.html_body, layout.text_body], partials)
    ]
    candidates = (
        Template.objects.filter(
            mention | Q(layout__in=layouts) | Q(published__partials__has_key=partial.name)
        )
        .select_related("event", "channel", "published")
        .order_by("event__key", "channel__key", "language")
    )
    found = []
    for template in candidates:
        sources = list(template.content().values())
        if (
            template.layout_id in layouts
            or _includes(partial.name, sources, partials)
            or (template.published and partial.name in (template.published.partials or {}))
        ):
            found.append(template)
    return found


def partial_republish(*, partial: Partial, user=None) -> int:
    """Give each published template that includes the partial a new version with the
    partial as it is now (content and layout unchanged). Raises PublishError naming a
    template that would not compile (nothing written). Returns how many got one."""
    available = dict(Partial.objects.values_list("name", "body"))
    count = 0
    with transaction.atomic():
        for template in partial_templates(partial):
            published = template.published
            if published is None or partial.name not in (published.partials or {}):
                continue
            if published.partials[partial.name] == partial.body:
                continue
            snapshot = {**published.partials, partial.name: partial.body}
            sources = Sources(
                **published.content_sources(),
                layout_html=published.layout_version.html_body if published.layout_version else "",
                layout_text=published.layout_version.text_body if published.layout_version else "",
                partials={**available, **snapshot},
            )
            try:
                compile_sources(sources)
            except TemplateError as error:
                raise PublishError(f"{template.key} does not compile with it: {error}") from error
            version_add(
                template,
                content=published.content(),
                layout_version=published.layout_version,
                partials=partials_used(sources, sources.partials),
                user=user,
                note=f"Partial {partial.name!r} updated",
            )
            count += 1
    return count
