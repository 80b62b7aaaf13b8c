"""Template previews for operators: render what they are typing with sample values (or a real
recipient's), and say precisely what is wrong (syntax errors with their line, variables the
event does not declare, declared variables missing from the sample values, the channel's
limits: lengths, SMS segments, links, JSON), plus SMS length and segments."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from campaigns.domain.composition import COLUMNS, Sources
from campaigns.domain.context import RECIPIENT_FIELDS
from campaigns.domain.rendering import (
    Rendered,
    TemplateError,
    compile_sources,
    template_render,
)
from channels.backends.fields import TemplateField

#: Names every template may use besides the event's declared variables.
BUILTIN_NAMES = frozenset({"recipient", "unsubscribe_url", "preferences_url", "digest"})
#: A recipient as every real one is (``notify.RECIPIENT_FIELDS``), and no more: an address only
#: some recipients have (``phone``, ``push_token`` …) is not promised.
SAMPLE_RECIPIENT = dict(
    zip(RECIPIENT_FIELDS, ("Ann Example", "ann@example.com", "en", "Europe/Berlin"), strict=True)
)

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
_URL = URLValidator(schemes=["https", "http"])


@dataclass(frozen=True, slots=True)
class SmsInfo:
    encoding: str  # "GSM-7" or "UCS-2"
    length: int  # characters as the network counts them (septets or UTF-16 units)
    segments: int
    #: The channel's limit of segments, when it has one.
    max_segments: int | None = None


@dataclass(slots=True)
class Preview:
    subject: str = ""
    preheader: str = ""
    text: str = ""
    html: str = ""
    link: str = ""
    image: str = ""
    #: The JSON body, indented for reading, and parsed.
    body: str = ""
    body_data: Any = None
    #: The text part was made from the HTML body.
    text_generated: bool = False
    errors: list[str] = field(default_factory=list)
    sms: SmsInfo | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def sms_info(text: str, *, max_segments: int | None = None) -> SmsInfo:
    """GSM-7 when every character is in the GSM 03.38 alphabet (extension characters count
    twice): 160 per message, 153 per segment when split; otherwise UCS-2: 70, and 67."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        length = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        length = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    segments = 0 if length == 0 else 1 if length <= single else -(-length // multi)
    return SmsInfo(encoding=encoding, length=length, segments=segments, max_segments=max_segments)


def field_problems(
    rendered: Rendered, sources: Sources, fields: tuple[TemplateField, ...]
) -> list[tuple[str, str]]:
    """(column, problem) for each of the channel's limits the template breaks: a required
    field left empty, a rendered value too long or in too many SMS segments, a link that is
    not one. Fields the channel does not use are not checked."""
    problems = []
    values = {
        "subject": rendered.subject,
        "preheader": rendered.preheader,
        "html": rendered.html,
        "text": rendered.text,
        "link": rendered.link,
        "image": rendered.image,
        "body": rendered.body,
    }
    for spec in fields:
        column, value = COLUMNS[spec.name], values[spec.name]
        if spec.required and not getattr(sources, spec.name).strip():
            problems.append((column, f"{spec.label}: this channel needs it"))
            continue
        if spec.max_length is not None and len(value) > spec.max_length:
            problems.append(
                (
                    column,
                    f"{spec.label}: {len(value):,} characters with the sample values; this "
                    f"channel takes at most {spec.max_length:,}",
                )
            )
        if spec.max_segments is not None:
            info = sms_info(value)
            if info.segments > spec.max_segments:
                problems.append(
                    (
                        column,
                        f"{spec.label}: {info.segments} SMS segments ({info.length} "
                        f"{info.encoding} characters) with the sample values; at most "
                        f"{spec.max_segments}",
                    )
                )
        if spec.kind == "url" and value:
            try:
                _URL(value)
            except ValidationError:
                problems.append((column, f"{spec.label}: {value[:80]!r} is not an http(s) address"))
    return problems


def template_render_preview(
    *,
    variables: list[dict[str, Any]],
    sources: Sources,
    context: dict[str, Any],
    fields: tuple[TemplateField, ...] = (),
    recipient: dict[str, Any] | None = None,
    sms: bool = False,
) -> Preview:
    """Render ``sources`` with ``context`` (the event's sample values, or the operator's) for
    ``recipient`` (default: a sample one); every problem is reported in ``errors``, nothing
    raises. ``fields``: the channel's template fields, whose limits are checked."""
    preview = Preview()
    try:
        compiled = compile_sources(sources)
    except TemplateError as error:
        preview.errors.append(str(error))
        return preview
    declared = {v["name"] for v in variables}
    for name, line in sorted(compiled.names.items()):
        if name not in declared and name not in BUILTIN_NAMES:
            where = f" (line {line})" if line else ""
            preview.errors.append(
                f"unknown variable {name!r}{where}: the event does not declare it"
            )
    missing = [v["name"] for v in variables if v.get("required", True) and v["name"] not in context]
    if missing:
        preview.errors.append(
            f"declared variable(s) missing from the sample values: {', '.join(missing)}"
        )
    values = {
        **context,
        "recipient": {**SAMPLE_RECIPIENT, **(recipient or context.get("recipient") or {})},
        "unsubscribe_url": "https://example.com/unsubscribe/…",
        "preferences_url": "https://example.com/preferences/…",
    }
    try:
        rendered = template_render(compiled, values)
    except TemplateError as error:
        preview.errors.append(str(error))
        return preview
    preview.subject, preview.text, preview.html = rendered.subject, rendered.text, rendered.html
    preview.preheader, preview.link, preview.image = (
        rendered.preheader,
        rendered.link,
        rendered.image,
    )
    preview.text_generated = compiled.text_generated
    if rendered.data is not None:
        preview.body_data = rendered.data
        preview.body = json.dumps(rendered.data, indent=2, ensure_ascii=False)
    preview.errors.extend(problem for _, problem in field_problems(rendered, sources, fields))
    segments = next((f.max_segments for f in fields if f.max_segments), None)
    if sms or segments:
        preview.sms = sms_info(rendered.text, max_segments=segments)
    return preview
