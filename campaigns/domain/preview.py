"""Template previews for operators: render what they are typing with sample values, and say
precisely what is wrong (syntax errors with their line, variables the event does not declare,
declared variables missing from the sample values), plus SMS length and segments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.template.base import VariableNode

from campaigns.domain.context import RECIPIENT_FIELDS
from campaigns.domain.rendering import (
    CompiledTemplate,
    TemplateError,
    compile_sources,
    template_render,
)

#: Names every template may use besides the event's declared variables.
BUILTIN_NAMES = frozenset({"recipient", "unsubscribe_url", "preferences_url"})
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


@dataclass(frozen=True, slots=True)
class SmsInfo:
    encoding: str  # "GSM-7" or "UCS-2"
    length: int  # characters as the network counts them (septets or UTF-16 units)
    segments: int


@dataclass(slots=True)
class Preview:
    subject: str = ""
    text: str = ""
    html: str = ""
    errors: list[str] = field(default_factory=list)
    sms: SmsInfo | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def sms_info(text: str) -> SmsInfo:
    """GSM-7 when every character is in the GSM 03.38 alphabet (extension characters count
    twice): 160 per message, 153 per segment when split; otherwise UCS-2: 70, and 67."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        length = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        length = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    segments = 0 if length == 0 else 1 if length <= single else -(-length // multi)
    return SmsInfo(encoding=encoding, length=length, segments=segments)


def _used_names(compiled: CompiledTemplate) -> dict[str, int]:
    """Top-level names the templates print, with the line they first appear on."""
    names: dict[str, int] = {}
    for template in (compiled.subject, compiled.text, compiled.html):
        if template is None:
            continue
        for node in template.nodelist.get_nodes_by_type(VariableNode):
            var = node.filter_expression.var
            lookup = getattr(var, "var", None)
            if isinstance(lookup, str) and not getattr(var, "literal", None):
                name = lookup.split(".", 1)[0]
                names.setdefault(name, getattr(node.token, "lineno", 0) or 0)
    return names


def template_render_preview(
    *,
    variables: list[dict[str, Any]],
    subject: str,
    text_body: str,
    html_body: str,
    context: dict[str, Any],
    sms: bool = False,
) -> Preview:
    """Render with ``context`` (the event's sample values, or the operator's); every problem
    is reported in ``errors``, nothing raises."""
    preview = Preview()
    try:
        compiled = compile_sources(subject, text_body, html_body)
    except TemplateError as error:
        preview.errors.append(str(error))
        return preview
    declared = {v["name"] for v in variables}
    for name, line in sorted(_used_names(compiled).items()):
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
        "recipient": {**SAMPLE_RECIPIENT, **(context.get("recipient") or {})},
        "unsubscribe_url": "https://example.com/unsubscribe/…",
        "preferences_url": "https://example.com/preferences/…",
    }
    try:
        rendered = template_render(compiled, values)
    except TemplateError as error:
        preview.errors.append(str(error))
        return preview
    preview.subject, preview.text, preview.html = rendered.subject, rendered.text, rendered.html
    if sms:
        preview.sms = sms_info(rendered.text)
    return preview
