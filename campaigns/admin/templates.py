from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import path
from import_export.admin import ImportExportModelAdmin
from unfold.admin import ModelAdmin
from unfold.contrib.import_export.forms import ExportForm, ImportForm

from campaigns.admin.resources import TemplateResource
from campaigns.admin.send_test import SendTestMixin
from campaigns.domain.preview import Preview, template_render_preview
from campaigns.domain.untrusted_json import InvalidJSON, json_parse
from campaigns.models import Event, Template
from campaigns.outbox.testsend import template_test_send
from channels.models import ChannelConfig


@admin.register(Template)
class TemplateAdmin(SendTestMixin, ModelAdmin, ImportExportModelAdmin):
    resource_classes = [TemplateResource]
    import_form_class = ImportForm
    export_form_class = ExportForm
    list_display = ("event", "channel", "language", "subject", "is_active", "version", "updated_at")
    list_filter = ("channel", "language", "is_active")
    search_fields = ("event__key", "subject")
    list_select_related = ("event", "channel")
    readonly_fields = ("version", "created_at", "updated_at")
    change_form_after_template = "admin/campaigns/template/preview_panel.html"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return (
            qs.defer("text_body", "html_body")
            if request.resolver_match.url_name.endswith("changelist")
            else qs
        )

    def send_test_run(self, obj, address):
        return template_test_send(template=obj, address=address)

    def get_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path("preview/", preview, name="campaigns_template_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request):
        """The live preview (htmx): renders the form's current fields, never saves."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        data = request.POST
        event = Event.objects.filter(pk=data.get("event") or None).first()
        channel = ChannelConfig.objects.filter(pk=data.get("channel") or None).first()
        raw = data.get("preview_context", "").strip()
        context, problem = (event.sample_context() if event else {}), ""
        context |= {  # typed field by field
            name.removeprefix("preview_var__"): value
            for name, value in data.items()
            if name.startswith("preview_var__")
        }
        if raw:
            try:
                context |= json_parse(raw, what="the field", expect=dict)
            except InvalidJSON as error:
                problem = f'sample values: {error} (like {{"order_id": "A-1"}})'
        if problem:
            preview = Preview(errors=[problem])
        else:
            preview = template_render_preview(
                variables=event.variables if event else [],
                subject=data.get("subject", ""),
                text_body=data.get("text_body", ""),
                html_body=data.get("html_body", ""),
                context=context,
                sms=bool(channel and channel.backend_class.address_key == "phone"),
            )
        return TemplateResponse(
            request, "admin/campaigns/template/preview.html", {"preview": preview}
        )
