"""What a template compiles from: its fields, the layout it fills, the partials it includes and
its preheader, composed into one source per field before compiling. Pure: no database.

- A **layout** wraps the HTML body (and the text body) of the templates that use it: its
  ``{% block content %}{% endblock %}`` is where a template's body goes. An MJML layout
  holds the ``<mjml>`` document, and its templates give the sections.
- A **partial** is a named snippet stored in the database: ``{% include "footer" %}`` (or
  ``{% include "button" with url=order_url %}``) puts its source there before compiling, so it
  is compiled by the same sandboxed engines as the template (no other template can be reached)
  and works inside MJML too. Partials may include partials; a cycle is an error.
- An email's **preheader** goes into the HTML as a hidden first line.
- An HTML body that is MJML is compiled to HTML by MJML (mjml-python); the web font it links
  to is the site's own copy, never a font service's.
- An email left without a text part gets one made from its HTML: the HTML *template* is
  turned into a text template once per version (template tags kept), so a message costs no
  more than with a text part of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape

import html2text
from mjml import mjml2html

#: A template field's name (``channels.backends.fields``) → the column that holds its source.
COLUMNS = {
    "subject": "subject",
    "preheader": "preheader",
    "html": "html_body",
    "text": "text_body",
    "link": "link",
    "image": "image",
    "body": "json_body",
}

CONTENT_BLOCK = re.compile(
    r"\{%-?\s*block\s+content\s*-?%\}.*?\{%-?\s*endblock(?:\s+content)?\s*-?%\}", re.DOTALL
)
INCLUDE = re.compile(r"\{%\s*include\s+(?P<args>[^%]*?)\s*%\}")
_NAMED = re.compile(r"""^(?P<quote>["'])(?P<name>[\w.-]+)(?P=quote)(?:\s+with\s+(?P<with>.+))?$""")
PARTIAL_NAME = re.compile(r"^[\w.-]+$")
MAX_INCLUDE_DEPTH = 10

#: The web fonts MJML may link to, served by the site (static/notifier/fonts/).
FONT_FILE = "notifier/fonts/ubuntu.css"

#: A template tag: {{ … }}, {% … %} or {# … #}.
TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_PREHEADER = re.compile(r"<div data-preheader[^>]*>.*?</div>", re.DOTALL)
_PREHEADER_STYLE = (
    "display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;"
    "overflow:hidden;mso-hide:all"
)


class CompositionError(Exception):
    """A layout, partial or include is not usable; ``field`` names the column at fault."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Sources:
    """Everything a template version compiles from: its fields, by field name; its layout's
    HTML and text (empty: none); the partials it may include, by name."""

    subject: str = ""
    preheader: str = ""
    html: str = ""
    text: str = ""
    link: str = ""
    image: str = ""
    body: str = ""
    layout_html: str = ""
    layout_text: str = ""
    partials: Mapping[str, str] = field(default_factory=dict)

    def own(self) -> dict[str, str]:
        """The template's own fields, by field name."""
        return {name: getattr(self, name) for name in COLUMNS}


def is_mjml(source: str) -> bool:
    return source.lstrip().lower().startswith("<mjml")


def layout_check(source: str, *, what: str = "the layout") -> None:
    """A layout needs one content block, where its templates' bodies go."""
    found = len(CONTENT_BLOCK.findall(source))
    if found != 1:
        raise CompositionError(
            f"{what} needs one {{% block content %}}{{% endblock %}} where templates go "
            f"(it has {found})"
        )


def layout_apply(layout: str, content: str) -> str:
    """``content`` in the layout's content block (no layout: ``content`` as it is)."""
    if not layout.strip():
        return content
    layout_check(layout)
    return CONTENT_BLOCK.sub(lambda _: content, layout, count=1)


def included_names(source: str) -> list[str]:
    """The partials ``source`` includes by name, in order (includes by a variable are not
    names: ``includes_expand`` refuses them)."""
    names = []
    for match in INCLUDE.finditer(source):
        named = _NAMED.match(match.group("args"))
        if named:
            names.append(named.group("name"))
    return list(dict.fromkeys(names))


def partials_used(sources: Sources, available: Mapping[str, str]) -> dict[str, str]:
    """The partials the template (and its layout) includes, directly or through other
    partials, taken from ``available``: the snapshot a published version keeps."""
    pending = []
    for source in (*sources.own().values(), sources.layout_html, sources.layout_text):
        pending.extend(included_names(source))
    used: dict[str, str] = {}
    while pending:
        name = pending.pop()
        if name in used or name not in available:
            continue
        used[name] = available[name]
        pending.extend(included_names(available[name]))
    return dict(sorted(used.items()))


def includes_expand(
    source: str, partials: Mapping[str, str], *, field: str, chain: tuple[str, ...] = ()
) -> str:
    """``source`` with each ``{% include "name" %}`` replaced by that partial's source (a
    ``with`` becomes a ``{% with %}`` around it)."""

    def expand(match: re.Match) -> str:
        args = match.group("args")
        if re.search(r"\bonly$", args):
            raise CompositionError(
                f"{{% include {args} %}}: partials see the whole context (no only)", field=field
            )
        named = _NAMED.match(args)
        if named is None:
            raise CompositionError(
                f"{{% include {args} %}}: include a partial by its name in quotes, like "
                f'{{% include "footer" %}} (or {{% include "button" with url=link %}})',
                field=field,
            )
        name, extra = named.group("name"), named.group("with")
        if name not in partials:
            raise CompositionError(f"no partial named {name!r} (included)", field=field)
        if name in chain:
            raise CompositionError(
                f"partials include each other in a circle: {' → '.join([*chain, name])}",
                field=field,
            )
        if len(chain) >= MAX_INCLUDE_DEPTH:
            raise CompositionError(
                f"partials nested deeper than {MAX_INCLUDE_DEPTH} levels", field=field
            )
        inner = includes_expand(partials[name], partials, field=field, chain=(*chain, name))
        return f"{{% with {extra} %}}{inner}{{% endwith %}}" if extra else inner

    if "include" not in source:
        return source
    return INCLUDE.sub(expand, source)


def preheader_insert(html: str, preheader: str) -> str:
    """The preheader as the hidden first line of the HTML (MJML: of its body)."""
    if not preheader.strip():
        return html
    # A line of text: its words escaped here (a "<" would break the document), its tags'
    # values by the HTML engine when it renders.
    parts = TAG.split(preheader)
    tags = [*TAG.findall(preheader), ""]
    text = "".join(escape(part, quote=False) + tag for part, tag in zip(parts, tags, strict=True))
    div = f'<div data-preheader="" style="{_PREHEADER_STYLE}">{text}</div>'
    if is_mjml(html):
        body = re.search(r"<mj-body[^>]*>", html)
        if body is None:
            raise CompositionError("the MJML document has no <mj-body>", field="html_body")
        return f"{html[: body.end()]}<mj-raw>{div}</mj-raw>{html[body.end() :]}"
    body = re.search(r"<body[^>]*>", html, re.IGNORECASE)
    at = body.end() if body else 0
    return f"{html[:at]}{div}{html[at:]}"


def mjml_to_html(source: str, *, font_url: str) -> str:
    """MJML compiled to HTML; the Ubuntu font MJML links to comes from ``font_url`` (the
    site's copy) and no font service is linked."""
    return mjml2html(source, disable_comments=True, fonts={"Ubuntu": font_url})


def text_from_html(html: str) -> str:
    """A text template made from an HTML template: headings, paragraphs, lists and links
    (as ``[words](url)``) kept, tables flattened, images and the hidden preheader left out.
    Template tags are kept as they are, so the text renders with the same values."""
    tags: list[str] = []

    def hold(match: re.Match) -> str:
        tags.append(match.group())
        return f"NOTIFIERTAG{len(tags) - 1}X"

    held = TAG.sub(hold, _PREHEADER.sub("", html))
    converter = html2text.HTML2Text(bodywidth=0)
    converter.ignore_tables = True
    converter.ignore_images = True
    converter.ignore_emphasis = True
    text = converter.handle(held)
    lines = [line.rstrip() for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
    return re.sub(r"NOTIFIERTAG(\d+)X", lambda m: tags[int(m.group(1))], text)
