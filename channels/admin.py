"""Channels in the admin, with a form specific to each backend: its options (host, port,
credentials, sender …) become fields, validated by the backend. Secret options are
write-only: never shown back, and left blank they keep the stored value. Users who may only
view a channel see the masked config, never the stored one."""

from __future__ import annotations

import copy
import json

from django import forms
from django.contrib import admin
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.html import format_html
from import_export.admin import ImportExportModelAdmin
from unfold.admin import ModelAdmin
from unfold.contrib.import_export.forms import ExportForm, ImportForm
from unfold.widgets import (
    UnfoldAdminEmailInputWidget,
    UnfoldAdminIntegerFieldWidget,
    UnfoldAdminPasswordWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextInputWidget,
    UnfoldAdminURLInputWidget,
    UnfoldBooleanSwitchWidget,
)

from campaigns.admin.resources import ChannelConfigResource
from campaigns.admin.send_test import SendTestMixin
from campaigns.admin.windows import ChannelWindowInline
from campaigns.outbox.testsend import channel_test_send
from channels.backends.base import BaseBackend
from channels.models import SECRET_MASK, ChannelConfig
from channels.registry import UnknownBackend, backend_class, known_backends, resolve_backend_path

PREFIX = "cfg__"
MAIN = ("key", "name", "backend", "is_active")
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
        fields = (*MAIN, *RETRIES)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
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


@admin.register(ChannelConfig)
class ChannelConfigAdmin(SendTestMixin, ModelAdmin, ImportExportModelAdmin):
    form = ChannelConfigForm
    # Exports mask secrets; importing needs "add" (superusers), as adding a channel does.
    resource_classes = [ChannelConfigResource]
    import_form_class = ImportForm
    export_form_class = ExportForm
    list_display = ("key", "name", "backend", "is_active", "declared_in")
    list_filter = ("is_active", "backend")
    search_fields = ("key", "name")
    readonly_fields = INFO
    inlines = [ChannelWindowInline]

    def send_test_run(self, obj, address):
        return channel_test_send(channel=obj, address=address)

    def _options_backend(self, request, obj) -> type[BaseBackend] | None:
        """The backend whose options the form shows: the one posted, else the one the
        page was reloaded with (``?backend=``), else the channel's."""
        if request.method == "POST":
            path = request.POST.get("backend")
        else:
            path = request.GET.get("backend") or (obj.backend if obj else None)
        if not path:
            return None
        try:
            return backend_class(resolve_backend_path(path))
        except UnknownBackend:
            return None

    def _read_only(self, request, obj) -> bool:
        return obj is not None and not self.has_change_permission(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if self._read_only(request, obj):
            return super().get_form(request, obj, change=change, **kwargs)
        backend = self._options_backend(request, obj)
        options = option_fields(backend) if backend else {}
        kwargs["fields"] = [*MAIN, *RETRIES, *options]
        name = f"{backend.__name__}ChannelForm" if backend else "ChannelForm"
        form = type(
            name,
            (ChannelConfigForm,),
            {**options, "options_backend": backend, "reload_url": request.path},
        )
        return super().get_form(request, obj, change=change, form=form, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if self._read_only(request, obj):
            return [(None, {"fields": [*MAIN, "masked_config_display", *RETRIES, *INFO]})]
        backend = self._options_backend(request, obj)
        options = [PREFIX + name for name in backend.ConfigForm.base_fields] if backend else []
        label = f"{backend.verbose_name} options" if backend else "Options"
        description = None if backend else "Choose a backend: its options appear here."
        return [
            (None, {"fields": list(MAIN)}),
            (label, {"fields": options, "description": description}),
            ("Retries and rate", {"fields": list(RETRIES)}),
            ("Origin", {"fields": list(INFO)}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if self._read_only(request, obj):
            return [*MAIN, "masked_config_display", *RETRIES, *INFO]
        return self.readonly_fields

    @admin.display(description="Options")
    def masked_config_display(self, obj: ChannelConfig) -> str:
        return format_html(
            "<pre>{}</pre>", json.dumps(obj.masked_config(), indent=2, ensure_ascii=False)
        )
