"""The channel form of the admin: a form specific to each backend, whose options (host,
port, credentials, sender …) become fields of their own, validated by the backend. Secret
options are write-only: never shown back, and left blank they keep the stored value.

``option_fields(backend)`` gives a backend's options as form fields named ``cfg__<option>``;
``ChannelConfigForm`` edits a ``ChannelConfig`` with them. Any admin of channels (the
domain's, which adds availability windows and a test send) builds on these.
"""

from __future__ import annotations

import copy
import json

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.serializers.json import DjangoJSONEncoder
from unfold.widgets import (
    UnfoldAdminEmailInputWidget,
    UnfoldAdminIntegerFieldWidget,
    UnfoldAdminPasswordWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextInputWidget,
    UnfoldAdminURLInputWidget,
    UnfoldBooleanSwitchWidget,
)

from .backends.base import BaseBackend
from .declarations import known_backends
from .models import SECRET_MASK, ChannelConfig, Devices
from .registry import UnknownBackend, backend_class

PREFIX = "cfg__"
MAIN = ("key", "name", "backend", "is_active")
#: Which of a person's addresses of the channel's kind get a message (README "Every device").
DEVICES = ("devices",)
RETRIES = ("max_attempts", "retry_delay", "retry_backoff", "rate_limit", "rate_burst")
INFO = ("declared_in", "created_at", "updated_at")


def _widget(field: forms.Field, *, secret: bool) -> forms.Widget:
    if secret:
        return UnfoldAdminPasswordWidget(render_value=False)
    if isinstance(field, forms.BooleanField):
        return UnfoldBooleanSwitchWidget()
    if isinstance(field, forms.ChoiceField):
        return UnfoldAdminSelectWidget(choices=field.choices)
    if isinstance(field, (forms.IntegerField, forms.FloatField, forms.DecimalField)):
        return UnfoldAdminIntegerFieldWidget()
    if isinstance(field, forms.URLField):
        return UnfoldAdminURLInputWidget()
    if isinstance(field, forms.EmailField):
        return UnfoldAdminEmailInputWidget()
    return UnfoldAdminTextInputWidget()


def option_fields(backend: type[BaseBackend]) -> dict[str, forms.Field]:
    """The backend's config form fields, as admin form fields named ``cfg__<option>``."""
    secrets = set(backend.secret_fields())
    fields = {}
    for name, original in backend.ConfigForm.base_fields.items():
        field = copy.deepcopy(original)
        field.label = original.label or name.replace("_", " ").capitalize()
        field.widget = _widget(field, secret=name in secrets)
        if name in secrets:
            field.required = False  # blank keeps the stored value; the backend checks the rest
            field.help_text = " ".join(
                filter(None, [field.help_text, "Write-only: leave blank to keep the stored value."])
            )
        fields[PREFIX + name] = field
    return fields


class ChannelConfigForm(forms.ModelForm):
    """Built per request by ``ChannelConfigAdmin.get_form``: ``options_backend`` is the chosen
    backend class (None until one is chosen) and the form has one ``cfg__<option>`` field per
    option of its config form; ``reload_url`` is the page the backend choice reloads."""

    backend = forms.ChoiceField(choices=(), widget=UnfoldAdminSelectWidget)
    options_backend: type[BaseBackend] | None = None
    reload_url: str = ""

    class Meta:
        model = ChannelConfig
        fields = (*MAIN, *DEVICES, *RETRIES)

    def clean_devices(self) -> str:
        return self.cleaned_data.get("devices") or self.instance.devices or Devices.BEST

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "devices" in self.fields:  # a form that leaves it out keeps the default
            self.fields["devices"].required = False
        if "backend" in self.fields:
            field = self.fields["backend"]
            choices = sorted(known_backends().items(), key=lambda item: item[1])
            current = self.instance.backend
            if current and current not in dict(choices):
                choices.append((current, current))
            field.choices = [("", "Choose a backend"), *choices] if not current else choices
            if self.options_backend is not None:
                self.initial["backend"] = self.options_backend.dotted_path()
            # Choosing a backend reloads the form with its options (htmx): a channel is
            # created in one step, with its options. Only the key and name travel along;
            # never a secret, which would end up in a URL.
            field.widget.attrs.update(
                {
                    "hx-get": self.reload_url,
                    "hx-trigger": "change",
                    "hx-include": "[name=key], [name=name]",
                    "hx-select": f"#{ChannelConfig._meta.model_name}_form",
                    "hx-target": f"#{ChannelConfig._meta.model_name}_form",
                    "hx-swap": "outerHTML",
                    "hx-push-url": "true",
                }
            )
        stored = self.stored_options()
        secrets = set(self.options_backend.secret_fields()) if self.options_backend else set()
        for name, field in self.fields.items():
            if not name.startswith(PREFIX):
                continue
            option = name.removeprefix(PREFIX)
            if option in secrets:
                if stored.get(option):
                    field.widget.attrs["placeholder"] = f"{SECRET_MASK} (stored)"
            elif option in stored:
                self.initial.setdefault(name, stored[option])

    def stored_options(self) -> dict:
        """The saved options, when the form edits the backend they belong to (another
        backend's options, a secret above all, never carry over to a new choice)."""
        if self.options_backend is None or not self.instance.backend:
            return {}
        try:
            same = backend_class(self.instance.backend) is self.options_backend
        except UnknownBackend:
            same = False
        return dict(self.instance.config or {}) if same else {}

    def clean(self):
        data = super().clean()
        backend = self.options_backend
        if backend is None:
            return data
        stored = self.stored_options()
        secrets = set(backend.secret_fields())
        config = {}
        for name in backend.ConfigForm.base_fields:
            value = data.get(PREFIX + name)
            if name in secrets and value in (None, "") and stored.get(name):
                value = stored[name]
            if value not in (None, "") and value is not False:
                config[name] = value
        # The backend judges the options as a whole (required ones, one option needing
        # another); each error goes next to its option's field.
        options = backend.ConfigForm(data=config)
        if not options.is_valid():
            for name, errors in options.errors.items():
                field = None if name == NON_FIELD_ERRORS else PREFIX + name
                if field not in self.errors:  # a field's own error (not a number …) says it
                    self.add_error(field, errors)
            return data
        # Stored as JSON: a UUID, a Decimal … as its text, as the backend reads it back.
        self.instance.config = json.loads(json.dumps(config, cls=DjangoJSONEncoder))
        return data
