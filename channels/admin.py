"""Channels in the admin, with a form specific to each backend: its options (host, port,
credentials, sender …) become fields, validated by the backend. Secret options are
write-only: never shown back, and left blank they keep the stored value. Users who may only
view a channel see the masked config, never the stored one."""

from __future__ import annotations

import copy
import json

from django import forms
from django.contrib import admin
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

from campaigns.admin.send_test import SendTestMixin
from campaigns.admin.windows import ChannelWindowInline
from campaigns.resources import ChannelConfigResource
from campaigns.services.testsend import channel_test_send

from .backends.base import BaseBackend, ConfigurationError
from .models import SECRET_MASK, ChannelConfig
from .registry import UnknownBackend, backend_class, known_backends

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
    """Built per backend by ``ChannelConfigAdmin.get_form``; ``backend_options`` is the
    backend's option fields, ``options_backend`` the backend class."""

    backend = forms.ChoiceField(choices=())
    options_backend: type[BaseBackend] | None = None

    class Meta:
        model = ChannelConfig
        fields = (*MAIN, *RETRIES)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "backend" in self.fields:
            choices = sorted(known_backends().items(), key=lambda item: item[1])
            current = self.instance.backend
            if current and current not in dict(choices):
                choices.append((current, current))
            self.fields["backend"].choices = choices
        stored = self.instance.config or {}
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

    def clean(self):
        data = super().clean()
        if self.options_backend is None:
            return data
        stored = self.instance.config or {}
        secrets = set(self.options_backend.secret_fields())
        config = {}
        for name in self.options_backend.ConfigForm.base_fields:
            value = data.get(PREFIX + name)
            if name in secrets and value in (None, "") and stored.get(name):
                value = stored[name]
            if value not in (None, "") and value is not False:
                config[name] = value
        try:
            self.options_backend.clean_options(config, channel_key=data.get("key") or "")
        except ConfigurationError as error:
            # Named after the options, as the backend words it; the stored config is untouched.
            raise forms.ValidationError(str(error).split(": ", 1)[-1]) from None
        self.instance.config = config
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
        path = request.POST.get("backend") if request.method == "POST" else None
        path = path or (obj.backend if obj else request.GET.get("backend"))
        if not path:
            return None
        try:
            return backend_class(path)
        except UnknownBackend:
            return None

    def _read_only(self, request, obj) -> bool:
        return obj is not None and not self.has_change_permission(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        backend = None if self._read_only(request, obj) else self._options_backend(request, obj)
        if backend is None:
            return super().get_form(request, obj, change=change, **kwargs)
        options = option_fields(backend)
        kwargs["fields"] = [*MAIN, *RETRIES, *options]
        form = type(
            f"{backend.__name__}ChannelForm",
            (ChannelConfigForm,),
            {**options, "options_backend": backend},
        )
        return super().get_form(request, obj, change=change, form=form, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if self._read_only(request, obj):
            return [(None, {"fields": [*MAIN, "masked_config_display", *RETRIES, *INFO]})]
        backend = self._options_backend(request, obj)
        options = [PREFIX + name for name in backend.ConfigForm.base_fields] if backend else []
        label = f"{backend.verbose_name} options" if backend else "Options"
        description = None if backend else "Choose a backend and save to see its options."
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
