"""Template rendering: compile once per template version, render per message.

What a version compiles from (its fields, its layout, the partials it includes, its preheader)
is composed first (``composition``). Subjects, text bodies, links and JSON bodies render
without HTML escaping; HTML bodies with it; a JSON body's values are inserted JSON-escaped. An
HTML body that is MJML is compiled to HTML by MJML first, and the result is then a Django
template like any other. A published version never changes, so its compiled form is cached
by the version's id.
"""

from __future__ import annotations

import html
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

from django.conf import settings
from django.template import Context, Engine, TemplateSyntaxError, defaulttags
from django.template import Template as DjangoTemplate
from django.template.base import FilterExpression, Node, NodeList, TextNode, Variable, VariableNode
from django.template.defaulttags import ForNode, TemplateLiteral
from django.template.smartif import TokenBase
from django.templatetags.static import static
from django.utils.safestring import SafeString

from campaigns.domain.composition import (
    COLUMNS,
    FONT_FILE,
    TAG,
    CompositionError,
    Sources,
    includes_expand,
    is_mjml,
    layout_apply,
    mjml_to_html,
    preheader_insert,
    text_from_html,
)

TEXT_ENGINE = Engine(debug=True, autoescape=False)
_WORD = re.compile(r"\w+")
_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")
HTML_ENGINE = Engine(debug=True, autoescape=True)


class TemplateError(Exception):
    """A template cannot be compiled or rendered; names the column and, where known, the
    line."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    subject: DjangoTemplate
    text: DjangoTemplate
    html: DjangoTemplate | None
    preheader: DjangoTemplate | None = None
    link: DjangoTemplate | None = None
    image: DjangoTemplate | None = None
    body: DjangoTemplate | None = None
    #: The text part was made from the HTML body.
    text_generated: bool = False
    #: The top-level names its fields print (``order_id``, ``unsubscribe_url`` …), with the
    #: line each first appears on.
    names: Mapping[str, int] = field(default_factory=dict)
    #: Every word inside its template tags ({{ }}, {% %}), layout and partials included: a
    #: link it mentions anywhere (``{% if unsubscribe_url %}``) is signed for it.
    words: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str
    preheader: str = ""
    link: str = ""
    image: str = ""
    #: The JSON body as rendered (text), and parsed.
    body: str = ""
    data: Any = None


def _compile_field(engine: Engine, source: str, field: str) -> DjangoTemplate:
    try:
        return DjangoTemplate(source, engine=engine)
    except TemplateSyntaxError as error:
        line = ""
        info = getattr(error, "template_debug", None)
        if info:
            line = f" (line {info['line']}: {info['during'].strip()!r})"
        raise TemplateError(f"{field}: {error}{line}", field=field) from error


def _names(templates) -> dict[str, int]:
    """Top-level names the templates print, with the line they first appear on."""
    names: dict[str, int] = {}
    templates = [template for template in templates if template is not None]
    # A for loop's own names (``{% for item in digest.items %}{{ item.x }}``) are not context.
    loop_names = {"forloop"}
    for template in templates:
        for node in template.nodelist.get_nodes_by_type(ForNode):
            loop_names.update(node.loopvars)
    for template in templates:
        for node in template.nodelist.get_nodes_by_type(VariableNode):
            var = node.filter_expression.var
            lookup = getattr(var, "var", None)
            if isinstance(lookup, str) and not getattr(var, "literal", None):
                name = lookup.split(".", 1)[0]
                if name in loop_names:
                    continue
                names.setdefault(name, getattr(node.token, "lineno", 0) or 0)
    return names


def _pieces_check(sources: Sources) -> None:
    """Find which piece has a syntax error, by compiling each alone: the composed source's
    line numbers would mean nothing to its author."""
    for name, source in sources.own().items():
        engine = HTML_ENGINE if name == "html" else TEXT_ENGINE
        _compile_field(engine, source, COLUMNS[name])
    for what, source in (
        ("layout (HTML)", sources.layout_html),
        ("layout (text)", sources.layout_text),
    ):
        _compile_field(TEXT_ENGINE, source, what)
    for partial, source in sources.partials.items():
        _compile_field(TEXT_ENGINE, source, f"partial {partial!r}")


def _composed(sources: Sources, name: str) -> str:
    source = sources.own()[name]
    if name == "html":
        source = layout_apply(sources.layout_html, source)
    elif name == "text":
        source = layout_apply(sources.layout_text, source)
    return includes_expand(source, sources.partials, field=COLUMNS[name])


def compile_sources(sources: Sources, *, font_url: str | None = None) -> CompiledTemplate:
    """Compile a template's sources (with its layout and partials). Raises TemplateError
    naming the column (or the layout or partial) and line at fault. ``font_url``: where the
    site's copy of MJML's web font is linked from (default: the site's static URL)."""
    try:
        return _compile(sources, font_url=font_url or static(FONT_FILE))
    except CompositionError as error:
        raise TemplateError(str(error), field=error.field) from error
    except TemplateError:
        _pieces_check(sources)  # a clearer error, when one piece alone fails
        raise


def _compile(sources: Sources, *, font_url: str) -> CompiledTemplate:
    html = html_source = None
    if sources.html.strip():
        html_source = preheader_insert(_composed(sources, "html"), _composed(sources, "preheader"))
        if is_mjml(html_source):
            try:
                html_source = mjml_to_html(html_source, font_url=font_url)
            except ValueError as error:
                raise TemplateError(f"MJML: {error}", field="html_body") from error
        html = _compile_field(HTML_ENGINE, html_source, "html_body")
    generated = not sources.text.strip() and html_source is not None
    text_source = text_from_html(html_source) if generated else _composed(sources, "text")
    optional = {
        name: _compile_field(TEXT_ENGINE, _composed(sources, name), COLUMNS[name])
        if getattr(sources, name).strip()
        else None
        for name in ("preheader", "link", "image", "body")
    }
    subject = _compile_field(TEXT_ENGINE, _composed(sources, "subject"), "subject")
    text = _compile_field(TEXT_ENGINE, text_source, "text_body")
    composed = " ".join(
        [html_source or "", text_source, *(_composed(sources, n) for n in optional)]
    )
    return CompiledTemplate(
        subject=subject,
        text=text,
        html=html,
        text_generated=generated,
        names=_names([subject, text, html, *optional.values()]),
        words=frozenset(word for tag in TAG.findall(composed) for word in _WORD.findall(tag)),
        **optional,
    )


def email_font_url() -> str:
    """Where sent emails link MJML's web font from: the site's own copy."""
    return settings.SITE_URL.rstrip("/") + static(FONT_FILE)


class _CompiledCache:
    """Compiled template versions by id (a published version never changes), least recently
    used dropped first."""

    def __init__(self, size: int = 512):
        self.size = size
        self._items: OrderedDict[int, CompiledTemplate] = OrderedDict()
        self._lock = Lock()

    def get(self, version) -> CompiledTemplate:
        key = version.pk
        with self._lock:
            compiled = self._items.get(key)
            if compiled is not None:
                self._items.move_to_end(key)
                return compiled
        compiled = compile_sources(version.sources(), font_url=email_font_url())
        with self._lock:
            self._items[key] = compiled
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return compiled

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


compiled_templates = _CompiledCache()


def template_compile(version) -> CompiledTemplate:
    """The compiled form of a published ``TemplateVersion`` (cached by its id; one not yet
    saved compiles every time)."""
    if version.pk is None:
        return compile_sources(version.sources(), font_url=email_font_url())
    return compiled_templates.get(version)


def plain_text(rendered: str) -> str:
    """The output of the non-escaping engine as a plain ``str``.

    Django's ``Template.render`` returns a ``SafeString`` whatever the engine's autoescape,
    and a page prints a ``SafeString`` unescaped: text rendered without escaping must never
    carry that mark, or a page showing it would run the markup a template author or a
    context value put in. (``str()`` of a ``SafeString`` returns it unchanged.)"""
    return str.__str__(rendered)


def _json_escaped(value: Any) -> Any:
    """Strings escaped for a place inside a JSON string (``"{{ name }}"``)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)[1:-1]
    if isinstance(value, Mapping):
        return {key: _json_escaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_escaped(item) for item in value]
    return value


# --- rendering what a batch's messages share once -----------------------------------------

#: Tags whose output depends on nothing but the names they print and the nodes they hold,
#: and that set no name for the nodes after them (``{% cycle … as x %}``, ``{% regroup %}``,
#: ``{% now %}``, ``{% firstof … as x %}`` do; any tag not listed counts as personal).
_PURE_NODES = frozenset(
    {
        TextNode,
        VariableNode,
        ForNode,
        defaulttags.IfNode,
        defaulttags.WithNode,
        defaulttags.CommentNode,
        defaulttags.SpacelessNode,
        defaulttags.AutoEscapeControlNode,
        defaulttags.FilterNode,
        defaulttags.VerbatimNode,
        defaulttags.TemplateTagNode,
        defaulttags.LoadNode,
    }
)
#: Filters whose output is not a function of their input: never rendered once for many.
_IMPURE_FILTERS = frozenset({"random", "timesince", "timeuntil"})


def _reads_only(value: Any, allowed: Any) -> bool:
    """Whether ``value`` (a node, a node list, a filter expression, an ``{% if %}``
    condition…) reads no name for which ``allowed(name)`` is false, and holds only tags and
    filters known to print the same for the same names (``_PURE_NODES``)."""
    if isinstance(value, Node):
        if type(value) not in _PURE_NODES:
            return False
        return all(
            _reads_only(item, allowed)
            for name, item in vars(value).items()
            if name not in ("token", "origin")
        )
    if isinstance(value, FilterExpression):
        for function, arguments in value.filters:
            if getattr(function, "__name__", "") in _IMPURE_FILTERS:
                return False
            if getattr(function, "__module__", "") != "django.template.defaultfilters":
                return False  # a project's own filter may read anything
            if not all(_reads_only(argument, allowed) for _, argument in arguments):
                return False
        return _reads_only(value.var, allowed)
    if isinstance(value, Variable):
        return not value.lookups or allowed(value.lookups[0])
    if isinstance(value, NodeList | list | tuple):
        return all(_reads_only(item, allowed) for item in value)
    if isinstance(value, dict):
        return all(_reads_only(item, allowed) for item in value.values())
    if isinstance(value, TemplateLiteral):
        return _reads_only(value.value, allowed)
    if isinstance(value, TokenBase):  # an {% if %} operator: its operands
        return _reads_only(getattr(value, "first", None), allowed) and _reads_only(
            getattr(value, "second", None), allowed
        )
    return isinstance(value, str | int | float | bool | type(None))


#: Where Django's own tags keep the name they set (``{% cycle … as x %}``, ``{% firstof … as
#: x %}``, ``{% regroup … as x %}``, ``{% now … as x %}``, ``{% widthratio … as x %}``).
_NAME_ATTRIBUTES = ("asvar", "variable_name", "var_name")
_DJANGO_TAG_MODULES = frozenset(
    {"django.template.base", "django.template.defaulttags", "django.template.loader_tags"}
)


def _names_set(node: Node) -> set[str] | None:
    """The names ``node`` and the tags inside it may set for the nodes after it; None when
    one of them is not a tag of Django's own, whose names cannot be known."""
    names: set[str] = set()
    for inner in node.get_nodes_by_type(Node):
        if type(inner).__module__ not in _DJANGO_TAG_MODULES:
            return None
        for attribute in _NAME_ATTRIBUTES:
            value = getattr(inner, attribute, None)
            if isinstance(value, str) and value:
                names.add(value)
    return names


#: A piece of a plan (``SharedPieces._plan``): printed alike for equal stored contexts.
SHARED = True
#: A personal piece that needs Django's whole render (a tag, a filter…).
PERSONAL = False


class SharedPieces:
    """The pieces of templates that many messages of a batch print alike, rendered once.

    A fan-out's or a campaign's messages carry the same stored context; what differs is who
    each is for (``recipient``) and its signed links. A top-level piece of a template (a
    text, a ``{{ name }}``, a loop over the order's items…) that reads none of those
    ``personal`` names prints the same for every message with an equal stored context: it
    is rendered for the first one and its output reused, while the personal pieces are
    rendered for each message. A personal ``{{ recipient.name }}`` (no filter) that names a
    string in plain dicts is printed straight from them, escaped as Django escapes; anything
    else goes through Django's render. The result is the same text a whole render gives (the
    tests compare them over many templates and contexts)."""

    def __init__(self, personal: frozenset[str]):
        self.personal = personal
        self._plans: dict[int, tuple[DjangoTemplate, tuple[Any, ...]]] = {}
        self._outputs: dict[int, tuple[Any, dict[int, str]]] = {}

    def _plan(self, template: DjangoTemplate) -> tuple[Any, ...]:
        """Per top-level node: ``SHARED``, ``PERSONAL``, or (for a personal ``{{ a.b }}``)
        the tuple of its lookups."""
        kept = self._plans.get(id(template))
        if kept is not None and kept[0] is template:
            return kept[1]
        personal = set(self.personal)

        def allowed(name: str) -> bool:
            return name not in personal

        plan: list[Any] = []
        for node in template.nodelist:
            if _reads_only(node, allowed):
                plan.append(SHARED)
                continue
            plan.append(_plain_lookups(node) or PERSONAL)
            names = _names_set(node)  # the names it sets are personal for the pieces after it
            if names is None:  # a tag not known: nothing after it counts as shared
                plan += [PERSONAL] * (len(template.nodelist) - len(plan))
                break
            personal |= names
        plan_ = tuple(plan)
        self._plans[id(template)] = (template, plan_)
        return plan_

    def render(
        self, template: DjangoTemplate, values: dict[str, Any], *, autoescape: bool, shared: Any
    ) -> SafeString:
        """``template.render(Context(values, autoescape=autoescape))``, its shared pieces taken
        from the last render whose stored context was equal to ``shared``."""
        plan = self._plan(template)
        kept = self._outputs.get(id(template))
        reuse = kept is not None and (kept[0] is shared or kept[0] == shared)
        if reuse:  # without a Context, when every personal piece is a plain lookup
            outputs, bits = kept[1], []
            for index, piece in enumerate(plan):
                if piece is SHARED:
                    bits.append(outputs[index])
                    continue
                value = _plain_value(values, piece) if piece is not PERSONAL else None
                if value is None:
                    break
                bits.append(html.escape(value) if autoescape else value)
            else:
                return SafeString("".join(bits))
        context = Context(values, autoescape=autoescape)
        if not any(piece is SHARED for piece in plan):
            return template.render(context)
        outputs = kept[1] if reuse else {}
        bits = []
        with context.render_context.push_state(template), context.bind_template(template):
            context.template_name = template.name
            for index, node in enumerate(template.nodelist):
                if reuse and plan[index] is SHARED:
                    bits.append(outputs[index])
                    continue
                bit = node.render_annotated(context)
                if plan[index] is SHARED:
                    outputs[index] = bit
                bits.append(bit)
        if not reuse:
            self._outputs[id(template)] = (shared, outputs)
        return SafeString("".join(bits))


def _plain_lookups(node: Node) -> tuple[str, ...] | None:
    """The lookups of a ``{{ a.b.c }}`` without filters, translation or a literal."""
    if type(node) is not VariableNode:
        return None
    expression = node.filter_expression
    var = expression.var
    if expression.filters or not isinstance(var, Variable):
        return None
    if var.literal is not None or var.translate or not var.lookups:
        return None
    return tuple(var.lookups)


def _plain_value(values: dict[str, Any], lookups: tuple[str, ...]) -> str | None:
    """What Django prints for ``lookups`` when each step is a key of a plain ``dict`` and the
    end is a plain ``str`` (a string is printed as it is, localized or not); None otherwise."""
    current: Any = values
    for bit in lookups:
        if type(current) is not dict:
            return None
        current = current.get(bit, _MISSING)
    return current if type(current) is str else None


_MISSING = object()


def _field(
    template: DjangoTemplate,
    values: dict[str, Any],
    autoescape: bool,
    pieces: SharedPieces | None,
    shared: Any,
) -> str:
    if pieces is None:
        return template.render(Context(values, autoescape=autoescape))
    return pieces.render(template, values, autoescape=autoescape, shared=shared)


def template_render(
    compiled: CompiledTemplate,
    context: dict[str, Any],
    *,
    pieces: SharedPieces | None = None,
    shared: Any = None,
) -> Rendered:
    """Subject, text, preheader and links as plain ``str`` (escape them wherever they reach
    HTML); the HTML body as the escaping engine's safe output; the JSON body as text and
    parsed (TemplateError when it is not JSON).

    ``pieces`` (one per batch) and ``shared`` (the message's stored context, which
    ``context`` contains): what reads only ``shared`` is rendered once for the messages
    whose stored context is equal (``SharedPieces``)."""

    def line(template: DjangoTemplate | None, values: dict[str, Any]) -> str:
        if template is None:
            return ""
        rendered = _field(template, values, False, pieces, shared)
        return plain_text(" ".join(rendered.split()))

    try:
        subject = line(compiled.subject, context)
        text = _field(compiled.text, context, False, pieces, shared)
        html_ = _field(compiled.html, context, True, pieces, shared) if compiled.html else ""
        preheader = line(compiled.preheader, context)
        link, image = line(compiled.link, context), line(compiled.image, context)
        body = (
            _field(compiled.body, _json_escaped(context), False, pieces, shared)
            if compiled.body
            else ""
        )
    except Exception as error:
        raise TemplateError(f"rendering failed: {type(error).__name__}: {error}") from error
    data = None
    if body.strip():
        try:
            data = json.loads(body)
        except ValueError as error:
            raise TemplateError(
                f"the JSON body is not JSON once rendered: {error}", field="json_body"
            ) from error
    if compiled.text_generated:  # a condition's tags, on lines of their own, left blank lines
        text = _BLANK_LINES.sub("\n\n", text).strip() + "\n"
    return Rendered(
        subject=subject,
        text=plain_text(text),
        html=html_,
        preheader=preheader,
        link=link,
        image=image,
        body=plain_text(body),
        data=data,
    )
