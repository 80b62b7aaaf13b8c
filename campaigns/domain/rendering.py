"""Template rendering: compile once per template version, render per message.

Subjects and text bodies render without HTML escaping; HTML bodies with it. An HTML body that
starts with ``<mjml`` is compiled to HTML by MJML first (once per version), and the result is
then a Django template like any other.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from typing import Any

from django.template import Context, Engine, TemplateSyntaxError
from django.template import Template as DjangoTemplate
from mjml import mjml2html

TEXT_ENGINE = Engine(debug=True, autoescape=False)
HTML_ENGINE = Engine(debug=True, autoescape=True)
FIELDS = ("subject", "text_body", "html_body")


class TemplateError(Exception):
    """A template cannot be compiled or rendered; names the field and, where known, the line."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    subject: DjangoTemplate
    text: DjangoTemplate
    html: DjangoTemplate | None


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


def is_mjml(source: str) -> bool:
    return source.lstrip().lower().startswith("<mjml")


def mjml_to_html(source: str) -> str:
    try:
        return mjml2html(source, disable_comments=True)
    except ValueError as error:
        raise TemplateError(f"MJML: {error}", field="html_body") from error


def _compile_field(engine: Engine, source: str, field: str) -> DjangoTemplate:
    try:
        return DjangoTemplate(source, engine=engine)
    except TemplateSyntaxError as error:
        line = ""
        info = getattr(error, "template_debug", None)
        if info:
            line = f" (line {info['line']}: {info['during'].strip()!r})"
        raise TemplateError(f"{field}: {error}{line}", field=field) from error


def compile_sources(subject: str, text_body: str, html_body: str) -> CompiledTemplate:
    html = None
    if html_body.strip():
        html_source = mjml_to_html(html_body) if is_mjml(html_body) else html_body
        html = _compile_field(HTML_ENGINE, html_source, "html_body")
    return CompiledTemplate(
        subject=_compile_field(TEXT_ENGINE, subject, "subject"),
        text=_compile_field(TEXT_ENGINE, text_body, "text_body"),
        html=html,
    )


class _CompiledCache:
    """Compiled templates per (template id, version), least recently used dropped first."""

    def __init__(self, size: int = 512):
        self.size = size
        self._items: OrderedDict[tuple[int, int], CompiledTemplate] = OrderedDict()
        self._lock = Lock()

    def get(self, template) -> CompiledTemplate:
        key = (template.pk, template.version)
        with self._lock:
            compiled = self._items.get(key)
            if compiled is not None:
                self._items.move_to_end(key)
                return compiled
        compiled = compile_sources(template.subject, template.text_body, template.html_body)
        with self._lock:
            self._items[key] = compiled
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return compiled

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


compiled_templates = _CompiledCache()


def template_compile(template) -> CompiledTemplate:
    """Compile a Template row (cached when saved; unsaved ones compile every time)."""
    if template.pk is None or not isinstance(template.version, int):
        return compile_sources(template.subject, template.text_body, template.html_body)
    return compiled_templates.get(template)


def plain_text(rendered: str) -> str:
    """The output of the non-escaping engine as a plain ``str``.

    Django's ``Template.render`` returns a ``SafeString`` whatever the engine's autoescape,
    and a page prints a ``SafeString`` unescaped: text rendered without escaping must never
    carry that mark, or a page showing it would run the markup a template author or a
    context value put in. (``str()`` of a ``SafeString`` returns it unchanged.)"""
    return str.__str__(rendered)


def template_render(compiled: CompiledTemplate, context: dict[str, Any]) -> Rendered:
    """Subject and text as plain ``str`` (escape them wherever they reach HTML); the HTML body
    as the escaping engine's safe output."""
    try:
        subject = compiled.subject.render(Context(context, autoescape=False))
        text = compiled.text.render(Context(context, autoescape=False))
        html = compiled.html.render(Context(context, autoescape=True)) if compiled.html else ""
    except Exception as error:
        raise TemplateError(f"rendering failed: {type(error).__name__}: {error}") from error
    return Rendered(subject=plain_text(" ".join(subject.split())), text=plain_text(text), html=html)
