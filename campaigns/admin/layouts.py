"""Layouts and partials in the admin.

A layout's page shows the templates it affects and previews its draft on each of them, beside
the editor; publishing it gives each published template that uses it a new version with it. A
partial's page shows the templates that include it, and gives the published ones a version with
its current source.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from unfold.admin import ModelAdmin
from unfold.widgets import UnfoldAdminTextareaWidget

from campaigns.content.layouts import layout_draft_sources, layout_publish, layout_templates
from campaigns.content.partials import partial_republish, partial_templates
from campaigns.content.versions import PublishError
from campaigns.domain.preview import template_render_preview
from campaigns.models import Layout, Partial, Template


def _editor(kind: str, rows: int = 14):
    return UnfoldAdminTextareaWidget(attrs={"rows": rows, "data-editor": kind})


class LayoutForm(forms.ModelForm):
    class Meta:
        model = Layout
        fields = ("name", "channel", "is_default", "html_body", "text_body")
        widgets = {"html_body": _editor("html"), "text_body": _editor("text", 6)}


@admin.register(Layout)
class LayoutAdmin(ModelAdmin):
    form = LayoutForm
    list_display = ("name", "channel", "is_default", "state", "template_count", "updated_at")
    list_filter = ("channel",)
    search_fields = ("name",)
    list_select_related = ("channel", "published")
    change_form_outer_before_template = "admin/campaigns/layout/status_panel.html"
    change_form_after_template = "admin/campaigns/layout/preview_panel.html"

    class Media:
        css = {"all": ["notifier/template-admin.css"]}
        js = ["notifier/vendor/template-editor.js"]

    @admin.display(description="Published")
    def state(self, obj: Layout) -> str:
        if obj.published_id is None:
            return "never"
        changed = obj.published.content() != obj.content()
        return f"v{obj.published.number}" + (" · draft changed" if changed else "")

    @admin.display(description="Templates")
    def template_count(self, obj: Layout) -> int:
        return obj.templates.count()

    def get_readonly_fields(self, request, obj=None):
        return ("channel",) if obj is not None else ()

    def has_publish_permission(self, request) -> bool:
        return request.user.has_perm("campaigns.publish_layout")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["affected"] = list(layout_templates(obj))
            context["can_publish"] = self.has_publish_permission(request)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        def view(route, func, name):
            return path(route, self.admin_site.admin_view(func), name=f"campaigns_layout_{name}")

        return [
            view("<int:object_id>/publish/", self.publish_view, "publish"),
            view("<int:object_id>/preview/", self.preview_view, "preview"),
            *super().get_urls(),
        ]

    def publish_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_publish_permission(request):
            raise PermissionDenied
        layout = get_object_or_404(Layout, pk=object_id)
        try:
            version, count = layout_publish(
                layout=layout, user=request.user, note=request.POST.get("note", "").strip()
            )
        except PublishError as error:
            self.message_user(request, f"Not published: {error}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Published v{version.number}; {count} template(s) got a new version with it "
                "(messages already planned keep theirs).",
                messages.SUCCESS,
            )
        return redirect(reverse("admin:campaigns_layout_change", args=[layout.pk]))

    def preview_view(self, request, object_id):
        """The layout's draft as the form holds it now, on one of its templates (htmx)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        layout = get_object_or_404(Layout, pk=object_id)
        template = get_object_or_404(
            Template.objects.select_related("event", "channel", "published"),
            pk=request.POST.get("preview_template") or 0,
            layout=layout,
        )
        draft = Layout(
            html_body=request.POST.get("html_body", layout.html_body),
            text_body=request.POST.get("text_body", layout.text_body),
        )
        preview = template_render_preview(
            variables=template.event.variables,
            sources=layout_draft_sources(draft, template),
            context=template.event.sample_context(),
            fields=template.template_fields(),
        )
        return TemplateResponse(
            request,
            "admin/campaigns/template/preview.html",
            {"preview": preview, "is_email": template.channel.backend_class.category == "email"},
        )


class PartialForm(forms.ModelForm):
    class Meta:
        model = Partial
        fields = ("name", "description", "body")
        widgets = {"body": _editor("html", 10)}


@admin.register(Partial)
class PartialAdmin(ModelAdmin):
    form = PartialForm
    list_display = ("name", "description", "updated_at")
    search_fields = ("name", "description", "body")
    change_form_outer_after_template = "admin/campaigns/partial/used_by.html"

    class Media:
        css = {"all": ["notifier/template-admin.css"]}
        js = ["notifier/vendor/template-editor.js"]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["used_by"] = partial_templates(obj)
            context["can_publish"] = request.user.has_perm("campaigns.publish_template")
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        return [
            path(
                "<int:object_id>/republish/",
                self.admin_site.admin_view(self.republish_view),
                name="campaigns_partial_republish",
            ),
            *super().get_urls(),
        ]

    def republish_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("campaigns.publish_template"):
            raise PermissionDenied
        partial = get_object_or_404(Partial, pk=object_id)
        try:
            count = partial_republish(partial=partial, user=request.user)
        except PublishError as error:
            self.message_user(request, f"Nothing published: {error}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"{count} template(s) got a new version with this partial.",
                messages.SUCCESS,
            )
        return redirect(reverse("admin:campaigns_partial_change", args=[partial.pk]))
