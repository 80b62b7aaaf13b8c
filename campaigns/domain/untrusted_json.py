"""Reading JSON that someone outside sent: request bodies, webhook payloads, form fields,
imported cells.

``json.loads`` alone answers a body nested 50,000 levels deep with a ``RecursionError`` (a 500
page), and accepts what PostgreSQL's ``jsonb`` then refuses (``NaN``). ``json_parse`` caps the
size and the nesting depth before parsing, accepts UTF-8 only and plain JSON only, can check
the top-level type, and raises one error, ``InvalidJSON``, whose message names the problem
for the 400 answer (or the form error) that the caller gives.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.fields import InvalidJSONInput, JSONString

MAX_BYTES = 1_000_000
MAX_DEPTH = 32

# A JSON string (skipped whole: brackets inside it do not nest), or a bracket.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', re.DOTALL)
_TYPE_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


class InvalidJSON(ValueError):
    """JSON refused; ``str(error)`` says why (e.g. "the body is nested deeper than 32 levels")."""


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def json_depth_check(text: str, *, what: str = "the JSON", max_depth: int = MAX_DEPTH) -> None:
    """Raise ``InvalidJSON`` when ``text`` nests arrays and objects deeper than ``max_depth``
    (counted without parsing, so a deep document costs one regex scan, never a recursion)."""
    depth = 0
    for match in _TOKENS.finditer(text):
        lexeme = match.group()
        if lexeme in ("[", "{"):
            depth += 1
            if depth > max_depth:
                raise InvalidJSON(f"{what} is nested deeper than {max_depth} levels")
        elif lexeme in ("]", "}"):
            depth -= 1


def json_parse(
    raw: bytes | str,
    *,
    what: str = "the body",
    expect: type | tuple[type, ...] | None = None,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """The JSON document in ``raw`` (bytes must be UTF-8), or ``InvalidJSON`` naming ``what``
    is wrong: too large, not UTF-8, nested too deep, not JSON, or (with ``expect``, e.g.
    ``dict``) of another type at the top."""
    if len(raw) > max_bytes:
        raise InvalidJSON(f"{what} is larger than {max_bytes} bytes")
    if isinstance(raw, bytes | bytearray):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidJSON(f"{what} is not UTF-8 (byte {error.start}: {error.reason})") from None
    json_depth_check(raw, what=what, max_depth=max_depth)
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:  # not reached within max_depth; kept as the last line of defence
        raise InvalidJSON(f"{what} is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, NaN, an integer of 4,300+ digits
        raise InvalidJSON(f"{what} is not valid JSON: {error}") from None
    if expect is not None and not isinstance(value, expect):
        wanted = " or ".join(
            _TYPE_NAMES[t] for t in (expect if isinstance(expect, tuple) else (expect,))
        )
        raise InvalidJSON(f"{what} must be {wanted} in JSON, not {_type_name(value)}")
    return value


class JSONFormField(forms.JSONField):
    """Django's ``forms.JSONField`` reading through ``json_parse``: a deep or otherwise
    malformed value is a form error naming the problem, not a ``RecursionError`` (its
    ``bound_data`` parses the value again to show the form, so both go through here).
    Custom decoders are not supported."""

    def to_python(self, value):
        if self.disabled or value in self.empty_values:
            return super().to_python(value)
        if isinstance(value, list | dict | int | float | JSONString):
            return value
        try:
            converted = json_parse(value, what="the value")
        except InvalidJSON as error:
            raise ValidationError(str(error), code="invalid", params={"value": value}) from None
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data, initial):
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return json_parse(data, what="the value")
        except InvalidJSON:
            return InvalidJSONInput(data)


#: ``formfield_overrides`` for admins whose models have JSONFields (merged with unfold's own).
ADMIN_FORMFIELD_OVERRIDES = {models.JSONField: {"form_class": JSONFormField}}
