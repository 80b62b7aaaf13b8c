"""An event's declared variables: a list of ``{"name", "label", "help", "sample", "type",
"required"}`` with unique identifier names. The type (text by default) says what a value must
be where operators type one (a campaign's values, a template's sample values). Pure."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

VARIABLE_KEYS = {"name", "label", "help", "sample", "type"}

#: type → what operators read in forms.
TYPES = {
    "text": "Text",
    "number": "Number",
    "integer": "Whole number",
    "boolean": "Yes / no",
    "date": "Date",
    "datetime": "Date and time",
    "url": "Link",
    "email": "Email address",
}


def validate_variables(value: Any) -> None:
    """Variables are a list of ``{"name", "label", "help", "sample", "type"}`` with unique
    names; a sample must be of the variable's type."""
    if not isinstance(value, list):
        raise ValidationError("variables must be a list of objects")
    seen = set()
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ValidationError(f"variable #{index + 1} needs a 'name'")
        if not item["name"].isidentifier():
            raise ValidationError(f"variable name {item['name']!r} is not a valid identifier")
        unknown = set(item) - VARIABLE_KEYS - {"required"}
        if unknown:
            raise ValidationError(
                f"variable {item['name']!r} has unknown keys: {', '.join(sorted(unknown))}"
            )
        if item["name"] in seen:
            raise ValidationError(f"variable {item['name']!r} is declared twice")
        kind = item.get("type", "text")
        if kind not in TYPES:
            raise ValidationError(
                f"variable {item['name']!r} has the type {kind!r}: one of {', '.join(TYPES)}"
            )
        sample = item.get("sample")
        if sample not in (None, "") and kind != "text":
            try:
                value_parse(item, sample)
            except ValueError as error:
                raise ValidationError(f"variable {item['name']!r}: sample {error}") from None
        seen.add(item["name"])


def value_parse(variable: dict[str, Any], raw: Any) -> Any:
    """A value typed for ``variable`` (a form's text, or JSON's number or bool) as its type
    wants it, as plain data (dates as ISO text); ValueError naming what is wrong."""
    kind = variable.get("type", "text")
    if kind == "text":
        return raw if isinstance(raw, str) else str(raw)
    text = raw.strip() if isinstance(raw, str) else raw
    if kind == "boolean":
        if isinstance(text, bool):
            return text
        if str(text).lower() in ("true", "yes", "1", "on"):
            return True
        if str(text).lower() in ("false", "no", "0", "off", ""):
            return False
        raise ValueError(f"{raw!r} is not yes or no")
    if kind == "integer":
        try:
            return int(text)
        except (TypeError, ValueError):
            raise ValueError(f"{raw!r} is not a whole number") from None
    if kind == "number":
        if isinstance(text, int | float) and not isinstance(text, bool):
            return text
        try:
            number = decimal.Decimal(str(text))
        except decimal.InvalidOperation:
            raise ValueError(f"{raw!r} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{raw!r} is not a number")
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "date":
        try:
            return dt.date.fromisoformat(str(text)).isoformat()
        except ValueError:
            raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD)") from None
    if kind == "datetime":
        try:
            return dt.datetime.fromisoformat(str(text)).isoformat()
        except ValueError:
            raise ValueError(f"{raw!r} is not a date and time (YYYY-MM-DD HH:MM)") from None
    validator = URLValidator(schemes=["https", "http"]) if kind == "url" else EmailValidator()
    try:
        validator(str(text))
    except ValidationError:
        what = "an http(s) link" if kind == "url" else "an email address"
        raise ValueError(f"{raw!r} is not {what}") from None
    return str(text)
