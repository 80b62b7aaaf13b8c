"""Channels in the admin, with the per-backend form of ``channels.forms``. Users who may only
view a channel see the masked config, never the stored one.

It is registered by the domain's admin, not by ``channels``: the page also edits the
channel's availability windows and sends tests, which are the domain's."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html
from import_export.admin import ImportExportModelAdmin
from unfold.admin import ModelAdmin
from unfold.contrib.import_export.forms import ExportForm, ImportForm

from campaigns.admin.resources import ChannelConfigResource
from campaigns.admin.send_test import SendTestMixin
from campaigns.admin.windows import ChannelWindowInline
from channels.backends.base import BaseBackend
from channels.forms import (
    DEVICES,
    INFO,
    MAIN,
    PREFIX,
    RETRIES,
    ChannelConfigForm,
    option_fields,
)
from channels.models import ChannelConfig
from channels.registry import UnknownBackend, backend_class, resolve_backend_path
from channels.testsend import channel_test_send


@admin.register(ChannelConfig)
class ChannelConfigAdmin(SendTestMixin, ModelAdmin, ImportExportModelAdmin):
    form = ChannelConfigForm
    # Exports mask secrets; importing needs "add" (superusers), as adding a channel does.
    resource_classes = [ChannelConfigResource]
    import_form_class = ImportForm
    export_form_class = ExportForm
    list_display = ("key", "name", "backend", "is_active", "devices", "declared_in")
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
        kwargs["fields"] = [*MAIN, *DEVICES, *RETRIES, *options]
        name = f"{backend.__name__}ChannelForm" if backend else "ChannelForm"
        form = type(
            name,
            (ChannelConfigForm,),
            {**options, "options_backend": backend, "reload_url": request.path},
        )
        return super().get_form(request, obj, change=change, form=form, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if self._read_only(request, obj):
            return [(None, {"fields": [*MAIN, "masked_config_display", *DEVICES, *RETRIES, *INFO]})]
        backend = self._options_backend(request, obj)
        options = [PREFIX + name for name in backend.ConfigForm.base_fields] if backend else []
        label = f"{backend.verbose_name} options" if backend else "Options"
        description = None if backend else "Choose a backend: its options appear here."
        return [
            (None, {"fields": list(MAIN)}),
            (label, {"fields": options, "description": description}),
            ("Every device", {"fields": list(DEVICES)}),
            ("Retries and rate", {"fields": list(RETRIES)}),
            ("Origin", {"fields": list(INFO)}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if self._read_only(request, obj):
            return [*MAIN, "masked_config_display", *DEVICES, *RETRIES, *INFO]
        return self.readonly_fields

    @admin.display(description="Options")
    def masked_config_display(self, obj: ChannelConfig) -> str:
        return format_html(
            "<pre>{}</pre>", json.dumps(obj.masked_config(), indent=2, ensure_ascii=False)
        )
