"""An event's declared context variables: a list of ``{"name", "label", "help", "sample",
"required"}`` with unique identifier names. Pure."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

VARIABLE_KEYS = {"name", "label", "help", "sample"}


def validate_variables(value: Any) -> None:
    """Variables are a list of ``{"name", "label", "help", "sample"}`` with unique names."""
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
        seen.add(item["name"])
