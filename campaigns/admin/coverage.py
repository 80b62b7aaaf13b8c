"""The template coverage of an event: which channel has a template in which language."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from channels.models import ChannelConfig


def coverage(event) -> tuple[list[str], list[tuple[ChannelConfig, list]]]:
    """(languages, [(channel, [template or None per language])]) over the active channels
    and the site's languages plus any language a template uses. Two queries."""
    templates = {(t.channel_id, t.language): t for t in event.templates.all()}
    languages = list(
        dict.fromkeys(
            [code for code, _ in settings.LANGUAGES] + sorted({lang for _, lang in templates})
        )
    )
    channels = list(ChannelConfig.objects.filter(is_active=True).order_by("key"))
    rows = [(c, [templates.get((c.pk, lang)) for lang in languages]) for c in channels]
    return languages, rows


def coverage_table(event) -> str:
    languages, rows = coverage(event)
    head = format_html_join(
        "", '<th class="px-3 py-2 text-left">{}</th>', ((language,) for language in languages)
    )
    body = []
    for channel, cells in rows:
        tds = []
        for language, template in zip(languages, cells, strict=True):
            if template is None:
                add = (
                    reverse("admin:campaigns_template_add")
                    + "?"
                    + urlencode({"event": event.pk, "channel": channel.pk, "language": language})
                )
                tds.append(
                    format_html(
                        '<td class="px-3 py-2"><a class="text-red-600" data-missing="{}/{}" '
                        'href="{}">missing</a></td>',
                        channel.key,
                        language,
                        add,
                    )
                )
            else:
                url = reverse("admin:campaigns_template_change", args=[template.pk])
                state = "✓" if template.is_active else "inactive"
                tds.append(
                    format_html(
                        '<td class="px-3 py-2"><a class="text-green-700" data-present="{}/{}" '
                        'href="{}">{}</a></td>',
                        channel.key,
                        language,
                        url,
                        state,
                    )
                )
        body.append(
            format_html(
                '<tr><th class="px-3 py-2 text-left">{}</th>{}</tr>',
                channel.name,
                format_html_join("", "{}", ((td,) for td in tds)),
            )
        )
    return format_html(
        '<table class="border border-base-200 rounded-default text-sm"><thead><tr><th></th>{}'
        "</tr></thead><tbody>{}</tbody></table>",
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
