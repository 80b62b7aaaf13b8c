"""Forms instead of JSON: an event's variables edited as rows (name, label, help, sample,
type, required), and a campaign's values as a form made from its event's variables, each
checked against its type."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from campaigns.domain.untrusted_json import InvalidJSON, json_parse
from campaigns.domain.variables import TYPES, validate_variables, value_parse

ROW_KEYS = ("name", "label", "help", "sample", "type")
#: Empty rows offered under the variables, for new ones (no script needed to add one).
EXTRA_ROWS = 3


class VariablesWidget(forms.Widget):
    """One row of inputs per variable, and a few empty rows for new ones; a row whose name
    is emptied (or whose Remove box is ticked) is dropped."""

    template_name = "admin/campaigns/event/variables_widget.html"

    def format_value(self, value):
        return value if isinstance(value, list) else []

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        rows = [
            {
                **{key: ("" if item.get(key) is None else str(item.get(key))) for key in ROW_KEYS},
                "type": item.get("type", "text"),
                "required": item.get("required", True),
            }
            for item in self.format_value(value)
            if isinstance(item, dict)
        ]
        rows += [
            {**dict.fromkeys(ROW_KEYS, ""), "type": "text", "required": True, "new": True}
            for _ in range(EXTRA_ROWS)
        ]
        context["rows"] = rows
        context["types"] = TYPES
        return context

    def value_from_datadict(self, data, files, name):
        if f"{name}-rows" not in data:  # a form that does not show the rows (an import)
            return data.get(name)
        rows = []
        for index in range(int(data.get(f"{name}-rows") or 0)):
            prefix = f"{name}-{index}-"
            row_name = (data.get(f"{prefix}name") or "").strip()
            if not row_name or data.get(f"{prefix}remove"):
                continue
            item: dict[str, Any] = {"name": row_name}
            for key in ("label", "help", "sample"):
                if (value := (data.get(f"{prefix}{key}") or "").strip()) or key == "sample":
                    item[key] = value
            kind = data.get(f"{prefix}type") or "text"
            if kind != "text":
                item["type"] = kind
            if not data.get(f"{prefix}required"):
                item["required"] = False
            rows.append(item)
        return rows

    def value_omitted_from_data(self, data, files, name):
        return f"{name}-rows" not in data and name not in data


class VariablesField(forms.Field):
    widget = VariablesWidget

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in (None, ""):
            return []
        if isinstance(value, str):  # posted as JSON (a script, an older form)
            try:
                return json_parse(value, what="the variables", expect=list)
            except InvalidJSON as error:
                raise ValidationError(str(error)) from None
        return value

    def validate(self, value):
        super().validate(value)
        validate_variables(value)
        for item in value:  # a sample is typed text: stored as its type wants it
            if item.get("sample") not in (None, "") and item.get("type", "text") != "text":
                item["sample"] = value_parse(item, item["sample"])

    def has_changed(self, initial, data):
        return (initial or []) != (data or [])


class ValuesWidget(forms.Widget):
    """A campaign's values: one input per variable of the event, typed (a number field for a
    number, a date field for a date …). ``variables`` is set by the form."""

    template_name = "admin/campaigns/campaign/values_widget.html"
    variables: list[dict[str, Any]] = []

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        value = value if isinstance(value, dict) else {}
        context["inputs"] = [
            {
                "variable": variable,
                "name": f"{name}__{variable['name']}",
                "input": _input_type(variable.get("type", "text")),
                "value": _shown(value.get(variable["name"], "")),
            }
            for variable in self.variables
        ]
        return context

    def value_from_datadict(self, data, files, name):
        return {
            variable["name"]: data.get(f"{name}__{variable['name']}", "")
            for variable in self.variables
            if f"{name}__{variable['name']}" in data
        }

    def value_omitted_from_data(self, data, files, name):
        return False


def _input_type(kind: str) -> str:
    return {
        "number": "number",
        "integer": "number",
        "date": "date",
        "datetime": "datetime-local",
        "url": "url",
        "email": "email",
        "boolean": "boolean",
    }.get(kind, "text")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class ValuesField(forms.Field):
    """The event's values, each parsed as its variable's type; every problem named."""

    widget = ValuesWidget

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.variables: list[dict[str, Any]] = []

    def set_variables(self, variables: list[dict[str, Any]]) -> None:
        self.variables = list(variables or [])
        self.widget.variables = self.variables

    def clean(self, value):
        value = value if isinstance(value, dict) else {}
        values, problems = {}, []
        for variable in self.variables:
            raw = value.get(variable["name"], "")
            if raw in ("", None):
                if variable.get("required", True):
                    problems.append(f"{variable.get('label') or variable['name']}: required")
                continue
            try:
                values[variable["name"]] = value_parse(variable, raw)
            except ValueError as error:
                problems.append(f"{variable.get('label') or variable['name']}: {error}")
        if problems:
            raise ValidationError(problems)
        return values

    def has_changed(self, initial, data):
        return True
