"""The translation status of an event: which channel has a template in which language.

The grid counts the channels that reach people (active, and not a site's own social account)
and the languages the site offers (``LANGUAGES``). A cell is missing (a link to a form filled
in with the source language's content to translate), a draft never published, out of date (the
source language's template was published after this translation was), or up to date.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from channels.models import ChannelConfig
from channels.registry import UnknownBackend


@dataclass(frozen=True, slots=True)
class Cell:
    state: str  # "missing", "draft", "outdated", "current", "inactive"
    url: str
    template: object | None = None


def source_language(event) -> str:
    return (event.default_language or settings.LANGUAGE_CODE).lower()


def _reaches_people(channel: ChannelConfig) -> bool:
    try:
        return channel.backend_class.reaches_people
    except UnknownBackend:
        return False


def coverage(event) -> tuple[list[str], list[tuple[ChannelConfig, list[Cell]]]]:
    """(languages, [(channel, [cell per language])]). Two queries."""
    templates = {
        (t.channel_id, t.language): t for t in event.templates.select_related("published").all()
    }
    languages = [code.lower() for code, _ in settings.LANGUAGES]
    source = source_language(event)
    channels = [
        c
        for c in ChannelConfig.objects.filter(is_active=True).order_by("key")
        if _reaches_people(c)
    ]
    rows = []
    for channel in channels:
        original = templates.get((channel.pk, source))
        cells = []
        for language in languages:
            template = templates.get((channel.pk, language))
            if template is None:
                query = {"event": event.pk, "channel": channel.pk, "language": language}
                if original is not None:
                    query["copy_from"] = original.pk
                url = reverse("admin:campaigns_template_add") + "?" + urlencode(query)
                cells.append(Cell("missing", url))
                continue
            url = reverse("admin:campaigns_template_change", args=[template.pk])
            if not template.is_active:
                state = "inactive"
            elif template.published is None:
                state = "draft"
            elif (
                language != source
                and original is not None
                and original.published is not None
                and original.published.published_at > template.published.published_at
            ):
                state = "outdated"
            else:
                state = "current"
            cells.append(Cell(state, url, template))
        rows.append((channel, cells))
    return languages, rows


LABELS = {
    "missing": ("text-red-600", "missing"),
    "draft": ("text-amber-700", "draft, not published"),
    "outdated": ("text-amber-700", "out of date"),
    "inactive": ("text-base-500", "inactive"),
    "current": ("text-green-700", "✓"),
}


def coverage_table(event) -> str:
    languages, rows = coverage(event)
    source = source_language(event)
    head = format_html_join(
        "",
        '<th class="px-3 py-2 text-left">{}{}</th>',
        ((language, " (source)" if language == source else "") for language in languages),
    )
    body = []
    for channel, cells in rows:
        tds = format_html_join(
            "",
            '<td class="px-3 py-2"><a class="{}" data-coverage="{}/{}" data-state="{}" '
            'href="{}">{}</a></td>',
            (
                (
                    LABELS[cell.state][0],
                    channel.key,
                    language,
                    cell.state,
                    cell.url,
                    LABELS[cell.state][1],
                )
                for language, cell in zip(languages, cells, strict=True)
            ),
        )
        body.append(
            format_html('<tr><th class="px-3 py-2 text-left">{}</th>{}</tr>', channel.name, tds)
        )
    return format_html(
        '<table class="border border-base-200 rounded-default text-sm"><thead><tr><th></th>{}'
        '</tr></thead><tbody>{}</tbody></table><p class="text-xs mt-2">Channels that reach '
        "people, in the site's languages. Out of date: the source language's template was "
        "published after the translation. A missing one opens a form with the source's "
        "content to translate.</p>",
        head,
        format_html_join("", "{}", ((row,) for row in body)),
    )


def coverage_summary(event) -> str:
    """For the events list: "email: de, en · inbox: en" from prefetched templates."""
    by_channel: dict[str, list[str]] = {}
    for template in event.templates.all():
        if template.is_active:
            by_channel.setdefault(template.channel.key, []).append(template.language)
    return (
        " · ".join(
            f"{key}: {', '.join(sorted(langs))}" for key, langs in sorted(by_channel.items())
        )
        or "no templates"
    )
