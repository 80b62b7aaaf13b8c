"""What a channel's templates hold: each backend declares its template fields (name, kind,
label, limits), and the template admin shows those fields only and checks their limits.

A field's ``name`` says where its rendered value goes in the ``Outgoing`` a backend sends:
``subject``, ``text``, ``html``, ``link``, ``image``, ``body`` (a JSON body, parsed), and
``preheader`` (an email's hidden first line, folded into its HTML). A push title is the
``subject`` field labelled "Title", its body the ``text`` field labelled "Body".

Each category has its usual set (``EMAIL_FIELDS``, ``SMS_FIELDS`` …); a backend names it, or
adapts it (``field.but(max_length=…)``) to its provider's limits. A backend that declares
names only (``template_fields = ("text",)``) gets its category's field of that name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

#: line: one line of text; text: plain text (or the platform's markup); html: MJML or HTML;
#: url: a link; json: a JSON document.
FieldKind = Literal["line", "text", "html", "url", "json"]

#: Every field name a template can hold, in the order forms show them.
FIELD_NAMES = ("subject", "preheader", "html", "text", "link", "image", "body")


@dataclass(frozen=True, slots=True)
class TemplateField:
    name: str
    kind: FieldKind
    label: str
    help: str = ""
    #: The template cannot be saved with this field empty.
    required: bool = False
    #: Characters of the rendered value (with the event's sample values).
    max_length: int | None = None
    #: SMS segments of the rendered value (GSM-7: 160, or 153 each when split; UCS-2: 70/67).
    max_segments: int | None = None
    #: The platform's markup, named for the author ("Slack mrkdwn", "Telegram HTML" …).
    markup: str = ""

    def __post_init__(self) -> None:
        if self.name not in FIELD_NAMES:
            raise ValueError(
                f"template field {self.name!r} is unknown: one of {', '.join(FIELD_NAMES)}"
            )

    def but(self, **changes) -> TemplateField:
        """This field with some attributes changed (a provider's own limits)."""
        return dataclasses.replace(self, **changes)


SUBJECT = TemplateField("subject", "line", "Subject", required=True, max_length=200)
TEXT = TemplateField("text", "text", "Text", required=True)
HTML = TemplateField(
    "html", "html", "HTML body", help="MJML (a document starting with the mjml tag) or HTML."
)

EMAIL_FIELDS = (
    SUBJECT.but(help="Mail programs show about 60 characters of it."),
    TemplateField(
        "preheader",
        "line",
        "Preheader",
        max_length=200,
        help="The line inbox lists show after the subject; not shown in the email itself.",
    ),
    HTML.but(
        label="Body (MJML or HTML)",
        help="MJML (a document starting with the mjml tag, or sections for a layout) or HTML.",
    ),
    TemplateField(
        "text",
        "text",
        "Text part",
        help="For mail programs that show no HTML. Left empty, it is made from the HTML body.",
    ),
)

SMS_FIELDS = (
    TEXT.but(
        max_segments=10,
        help="GSM-7 text: 160 characters in one message, 153 per segment when split; any "
        "other character (an emoji, “curly quotes”) makes it UCS-2: 70, and 67 per segment.",
    ),
)

PUSH_FIELDS = (
    TemplateField(
        "subject",
        "line",
        "Title",
        required=True,
        max_length=100,
        help="Phones show about 40 characters of it.",
    ),
    TemplateField(
        "text",
        "text",
        "Body",
        required=True,
        max_length=500,
        help="Lock screens show about 150 characters of it.",
    ),
    TemplateField(
        "link", "url", "Link", max_length=2000, help="Opened when the notification is tapped."
    ),
    TemplateField(
        "image", "url", "Image", max_length=2000, help="An image (https URL) shown with it."
    ),
)

CHAT_FIELDS = (TEXT.but(max_length=4000),)

WEBHOOK_FIELDS = (
    TemplateField(
        "body",
        "json",
        "JSON body",
        required=True,
        help='A JSON document; values are inserted JSON-escaped, so write "{{ name }}" '
        "inside quotes and numbers without.",
    ),
)

INBOX_FIELDS = (
    SUBJECT.but(label="Title"),
    TEXT,
    HTML.but(help="Optional: shown instead of the text where the inbox shows HTML."),
    TemplateField("link", "url", "Link", max_length=2000, help="Opened by the item's Open button."),
)

SOCIAL_FIELDS = (TEXT,)

OTHER_FIELDS = (SUBJECT.but(required=False, max_length=None), TEXT.but(required=False), HTML)

#: The usual fields of each backend category (``BaseBackend.category``).
CATEGORY_FIELDS: dict[str, tuple[TemplateField, ...]] = {
    "email": EMAIL_FIELDS,
    "sms": SMS_FIELDS,
    "push": PUSH_FIELDS,
    "chat": CHAT_FIELDS,
    "inbox": INBOX_FIELDS,
    "webhook": WEBHOOK_FIELDS,
    "social": SOCIAL_FIELDS,
    "other": OTHER_FIELDS,
}

_ANY = {
    "subject": SUBJECT.but(required=False, max_length=None),
    "preheader": EMAIL_FIELDS[1],
    "html": HTML,
    "text": TEXT.but(required=False),
    "link": PUSH_FIELDS[2],
    "image": PUSH_FIELDS[3],
    "body": WEBHOOK_FIELDS[0],
}


def fields_declared(
    declared: tuple[TemplateField | str, ...] | None, category: str
) -> tuple[TemplateField, ...]:
    """A backend's declaration as fields: None is its category's set; a name stands for the
    category's field of that name (else the general one)."""
    usual = CATEGORY_FIELDS.get(category, OTHER_FIELDS)
    if declared is None:
        return usual
    by_name = {field.name: field for field in usual}
    fields = []
    for item in declared:
        if isinstance(item, TemplateField):
            fields.append(item)
        elif item in by_name:
            fields.append(by_name[item])
        elif item in _ANY:
            fields.append(_ANY[item])
        else:
            raise TypeError(f"template field {item!r} is unknown: one of {', '.join(FIELD_NAMES)}")
    return tuple(fields)


#: Every field, for a template whose channel's backend cannot be loaded.
ALL_FIELDS = tuple(_ANY[name] for name in FIELD_NAMES)
