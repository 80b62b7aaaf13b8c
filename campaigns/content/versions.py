"""A template's versions: publish the draft, roll back to an earlier version, compare two.

A published version never changes: publishing and rolling back each add a version, and the
template's ``published`` moves to it. Messages keep the version they were made with, so a
message already scheduled (or retried, or sent again) goes out as it was planned.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from campaigns.domain.composition import COLUMNS, Sources, partials_used
from campaigns.domain.rendering import TemplateError, compile_sources
from campaigns.exceptions import NotifierError
from campaigns.models import Layout, LayoutVersion, Partial, Template, TemplateVersion
from campaigns.models.templates import CONTENT_COLUMNS


class PublishError(NotifierError):
    """A draft cannot be published (or a version restored); the message says why."""


def template_columns(template: Template) -> tuple[str, ...]:
    """The columns the template's channel uses: what a version of it keeps."""
    return tuple(COLUMNS[field.name] for field in template.template_fields())


def version_add(
    template: Template,
    *,
    content: dict[str, str],
    layout_version: LayoutVersion | None,
    partials: dict[str, str],
    user,
    note: str,
) -> TemplateVersion:
    last = template.versions.aggregate(last=Max("number"))["last"] or 0
    version = TemplateVersion.objects.create(
        template=template,
        number=last + 1,
        layout_version=layout_version,
        partials=partials,
        note=note[:300],
        published_at=timezone.now(),
        published_by=user if getattr(user, "pk", None) else None,
        **content,
    )
    template.published = version
    template.save(update_fields=["published", "updated_at"])
    return version


def _same(version: TemplateVersion | None, content, layout_version, partials) -> bool:
    return (
        version is not None
        and version.content() == content
        and version.layout_version_id == (layout_version.pk if layout_version else None)
        and (version.partials or {}) == partials
    )


def template_publish(*, template: Template, user=None, note: str = "") -> TemplateVersion:
    """Publish the template's draft as its next version: with its layout's published version
    and the partials it includes as they are now. The fields its channel does not use are
    left out (and cleared from the draft). Raises PublishError naming what stops it: the
    draft does not compile or breaks the channel's limits, its layout was never published,
    or nothing changed since the version published last."""
    with transaction.atomic():
        template = (
            Template.objects.select_for_update(of=("self",))
            .select_related("event", "channel", "layout__published", "published")
            .get(pk=template.pk)
        )
        layout_version = None
        if template.layout_id is not None:
            layout_version = template.layout.published
            if layout_version is None:
                raise PublishError(
                    f"the layout {template.layout.name!r} was never published: publish it first"
                )
        used = template_columns(template)
        unused = [c for c in CONTENT_COLUMNS if c not in used and getattr(template, c)]
        for column in unused:  # not shown for this channel, never sent: not kept
            setattr(template, column, "")
        try:
            template.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as error:
            raise PublishError(
                "the draft cannot be published: " + "; ".join(error.messages)
            ) from error
        content = template.content()
        partials = partials_used(
            template.sources(layout_version=layout_version),
            dict(Partial.objects.values_list("name", "body")),
        )
        if _same(template.published, content, layout_version, partials):
            raise PublishError(
                f"nothing changed since v{template.published.number}, the version published"
            )
        if unused:
            template.save(update_fields=[*unused, "updated_at"])
        return version_add(
            template,
            content=content,
            layout_version=layout_version,
            partials=partials,
            user=user,
            note=note,
        )


def template_rollback(
    *, template: Template, version: TemplateVersion, user=None, note: str = ""
) -> TemplateVersion:
    """Publish an earlier version again, exactly as it was (its layout version and partials
    too), as the next version; the draft becomes that version's content."""
    if version.template_id != template.pk:
        raise PublishError(f"v{version.number} is a version of another template")
    with transaction.atomic():
        template = (
            Template.objects.select_for_update(of=("self",))
            .select_related("published")
            .get(pk=template.pk)
        )
        if template.published_id == version.pk:
            raise PublishError(f"v{version.number} is the version published now")
        content = version.content()
        for column, value in content.items():
            setattr(template, column, value)
        template.layout_id = version.layout_id
        template.save(update_fields=[*CONTENT_COLUMNS, "layout", "updated_at"])
        return version_add(
            template,
            content=content,
            layout_version=version.layout_version,
            partials=version.partials or {},
            user=user,
            note=note or f"Rolled back to v{version.number}",
        )


def template_versions(template: Template):
    """The template's versions, newest first (a selector)."""
    return template.versions.select_related("published_by", "layout_version__layout").order_by(
        "-number"
    )


@dataclass(frozen=True, slots=True)
class FieldDiff:
    label: str
    #: (kind, line): kind is "+" (only in the newer), "-" (only in the older), " " (both) or
    #: "@" (where the next lines are).
    lines: list[tuple[str, str]]


def _lines_diff(old: str, new: str) -> list[tuple[str, str]]:
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2)
    lines = []
    for line in list(diff)[2:]:  # without the ---/+++ header
        kind = "@" if line.startswith("@@") else line[:1]
        lines.append((kind, line if kind == "@" else line[1:]))
    return lines


LABELS = {
    "subject": "Subject",
    "preheader": "Preheader",
    "html_body": "HTML body",
    "text_body": "Text",
    "link": "Link",
    "image": "Image",
    "json_body": "JSON body",
}


def versions_diff(older: TemplateVersion, newer: TemplateVersion) -> list[FieldDiff]:
    """What changed from ``older`` to ``newer``: each changed field, line by line; the layout
    version; each partial added, removed or changed."""
    diffs = []
    for column in CONTENT_COLUMNS:
        before, after = getattr(older, column), getattr(newer, column)
        if before != after:
            diffs.append(FieldDiff(LABELS[column], _lines_diff(before, after)))
    if older.layout_version_id != newer.layout_version_id:
        diffs.append(
            FieldDiff(
                "Layout",
                [
                    ("-", str(older.layout_version or "none")),
                    ("+", str(newer.layout_version or "none")),
                ],
            )
        )
    old_partials, new_partials = older.partials or {}, newer.partials or {}
    for name in sorted(set(old_partials) | set(new_partials)):
        before, after = old_partials.get(name, ""), new_partials.get(name, "")
        if before != after:
            diffs.append(FieldDiff(f"Partial {name!r}", _lines_diff(before, after)))
    return diffs


# --- import and export ------------------------------------------------------------------------


def version_export(version: TemplateVersion) -> dict:
    """A version as plain data: its content, number, note, when and by whom it was
    published, its layout version (name, number and content) and its partials."""
    layout = version.layout_version
    return {
        "number": version.number,
        **version.content(),
        "layout": None
        if layout is None
        else {
            "name": layout.layout.name,
            "number": layout.number,
            "html_body": layout.html_body,
            "text_body": layout.text_body,
        },
        "partials": version.partials or {},
        "note": version.note,
        "published_at": version.published_at.isoformat(),
        "published_by": version.published_by.get_username() if version.published_by else "",
    }


def versions_parse(items) -> list[dict]:
    """Imported versions, checked: a list of objects with a number, text fields, optional
    layout and partials. ValueError names what is wrong (a row error)."""
    if not isinstance(items, list):
        raise ValueError("versions must be a JSON list of versions")
    parsed, numbers = [], set()
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ValueError(f"version #{index} is not an object")
        number = item.get("number")
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise ValueError(f"version #{index} needs a number (1, 2 …)")
        if number in numbers:
            raise ValueError(f"v{number} is there twice")
        numbers.add(number)
        texts = {column: item.get(column) or "" for column in CONTENT_COLUMNS}
        if not all(isinstance(value, str) for value in texts.values()):
            raise ValueError(f"v{number}: its fields must be text")
        partials = item.get("partials") or {}
        if not isinstance(partials, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in partials.items()
        ):
            raise ValueError(f"v{number}: partials must be an object of name: source")
        layout = item.get("layout")
        if layout is not None and not (
            isinstance(layout, dict)
            and isinstance(layout.get("name"), str)
            and layout["name"]
            and all(isinstance(layout.get(k) or "", str) for k in ("html_body", "text_body"))
        ):
            raise ValueError(f"v{number}: layout must be an object with a name and its bodies")
        published_at = item.get("published_at") or ""
        try:
            when = dt.datetime.fromisoformat(published_at) if published_at else None
        except (TypeError, ValueError):
            raise ValueError(f"v{number}: published_at {published_at!r} is not a time") from None
        if when is not None and timezone.is_naive(when):
            raise ValueError(f"v{number}: published_at needs a timezone")
        sources = Sources(
            **{name: texts[column] for name, column in COLUMNS.items()},
            layout_html=(layout or {}).get("html_body") or "",
            layout_text=(layout or {}).get("text_body") or "",
            partials=partials,
        )
        try:
            compile_sources(sources)
        except TemplateError as error:
            raise ValueError(f"v{number} does not compile: {error}") from None
        parsed.append(
            {
                "number": number,
                "content": texts,
                "layout": layout,
                "partials": partials,
                "note": str(item.get("note") or "")[:300],
                "published_at": when,
                "published_by": str(item.get("published_by") or ""),
            }
        )
    return sorted(parsed, key=lambda item: item["number"])


def layout_version_for(layout: dict | None, channel) -> LayoutVersion | None:
    """The layout version of this site with the layout's name and content (made when it has
    none: the layout, for the template's channel, and the version)."""
    if layout is None:
        return None
    found, _ = Layout.objects.get_or_create(
        name=layout["name"],
        defaults={
            "channel": channel,
            "html_body": layout.get("html_body") or "",
            "text_body": layout.get("text_body") or "",
        },
    )
    content = {
        "html_body": layout.get("html_body") or "",
        "text_body": layout.get("text_body") or "",
    }
    for version in found.versions.all():
        if version.content() == content:
            return version
    last = found.versions.aggregate(last=Max("number"))["last"] or 0
    number = layout.get("number")
    taken = found.versions.filter(number=number).exists() if isinstance(number, int) else True
    version = LayoutVersion.objects.create(
        layout=found,
        number=number if not taken else last + 1,
        published_at=timezone.now(),
        **content,
    )
    if found.published_id is None:
        found.published = version
        found.save(update_fields=["published", "updated_at"])
    return version


def versions_import(*, template: Template, versions: list[dict], published: int | None) -> None:
    """Add the imported versions this template does not have yet (same content, layout and
    partials: the same version), keeping their numbers where they are free; then publish the
    one the file published. Nothing of this site's history is changed."""
    user_model = get_user_model()
    existing = list(template.versions.select_related("layout_version"))

    def fingerprint(content, layout_version, partials):
        layout = layout_version.content() if layout_version else None
        return repr((sorted(content.items()), layout, sorted(partials.items())))

    known = {fingerprint(v.content(), v.layout_version, v.partials or {}): v for v in existing}
    numbers = {v.number for v in existing}
    by_number = {}
    for item in versions:
        layout_version = layout_version_for(item["layout"], template.channel)
        key = fingerprint(item["content"], layout_version, item["partials"])
        match = known.get(key)
        if match is None:
            number = item["number"] if item["number"] not in numbers else max(numbers) + 1
            numbers.add(number)
            by = (
                user_model.objects.filter(
                    **{user_model.USERNAME_FIELD: item["published_by"]}
                ).first()
                if item["published_by"]
                else None
            )
            match = known[key] = TemplateVersion.objects.create(
                template=template,
                number=number,
                layout_version=layout_version,
                partials=item["partials"],
                note=item["note"],
                published_at=item["published_at"] or timezone.now(),
                published_by=by,
                **item["content"],
            )
        by_number[item["number"]] = match
    if published is not None:
        if published not in by_number:
            raise ValueError(f"published: the file has no v{published}")
        if template.published_id != by_number[published].pk:
            template.published = by_number[published]
            template.save(update_fields=["published", "updated_at"])
