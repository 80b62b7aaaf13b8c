"""Templates in the admin: the draft's form shows the fields the template's channel uses (with
its limits), edited in a code editor beside a live preview; publishing, the history of
versions, comparing two and rolling back; the preview as a real recipient."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from import_export.admin import ImportExportModelAdmin
from unfold.admin import ModelAdmin
from unfold.contrib.import_export.forms import ExportForm, ImportForm
from unfold.decorators import action
from unfold.widgets import UnfoldAdminTextareaWidget, UnfoldAdminTextInputWidget

from campaigns.admin.resources import TemplateResource
from campaigns.admin.send_test import SendTestMixin
from campaigns.content.previews import (
    preview_recipient,
    preview_recipients_search,
    template_for_recipient,
)
from campaigns.content.versions import (
    PublishError,
    template_publish,
    template_rollback,
    template_versions,
    versions_diff,
)
from campaigns.domain.composition import COLUMNS, Sources
from campaigns.domain.digests import digest_sample
from campaigns.domain.preview import Preview, template_render_preview
from campaigns.domain.untrusted_json import InvalidJSON, json_parse
from campaigns.models import Event, Layout, Partial, Template, TemplateVersion
from campaigns.models.templates import CONTENT_COLUMNS
from campaigns.outbox.testsend import template_test_send
from channels.backends.fields import ALL_FIELDS
from channels.models import ChannelConfig
from channels.registry import UnknownBackend

#: The code editor's language per field kind (``data-editor`` on the textarea).
EDITOR = {"html": "html", "json": "json", "text": "text"}
IDENTITY = ("event", "channel", "language")


def field_help(spec) -> str:
    """A field's help with its limits, in words (help texts are shown as HTML: no markup)."""
    limits = []
    if spec.max_length:
        limits.append(f"at most {spec.max_length:,} characters")
    if spec.max_segments:
        limits.append(f"at most {spec.max_segments} SMS segments")
    if spec.required:
        limits.append("required")
    text = spec.help
    if limits:
        text = f"{text} ({', '.join(limits)}, checked on save with the sample values)".strip()
    return text


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = (*IDENTITY, "layout", "slug", "is_active", *CONTENT_COLUMNS)

    def __init__(self, *args, template_fields=(), **kwargs):
        super().__init__(*args, **kwargs)
        for spec in template_fields:
            name = COLUMNS[spec.name]
            if name not in self.fields:
                continue
            field = self.fields[name]
            field.label, field.help_text = spec.label, field_help(spec)
            if spec.kind in EDITOR:
                field.widget = UnfoldAdminTextareaWidget(
                    attrs={
                        "rows": 14 if spec.kind == "html" else 6,
                        "data-editor": EDITOR[spec.kind],
                    }
                )
            else:
                field.widget = UnfoldAdminTextInputWidget()
            if spec.kind == "url":
                field.widget.attrs["placeholder"] = "https://…"
        if "layout" in self.fields:
            channel = self.initial.get("channel") or getattr(self.instance, "channel_id", None)
            self.fields["layout"].queryset = Layout.objects.filter(channel=channel or 0)
        if "channel" in self.fields:  # a new template: the channel's fields come with it
            select = self.fields["channel"].widget
            select = getattr(select, "widget", select)  # inside the admin's related-links wrapper
            select.attrs["data-reload-with"] = "channel,event,language"


def _channel_of(request, obj) -> ChannelConfig | None:
    if obj is not None:
        return obj.channel
    raw = request.POST.get("channel") or request.GET.get("channel")
    return ChannelConfig.objects.filter(pk=raw).first() if str(raw or "").isdigit() else None


def _template_fields(channel: ChannelConfig | None):
    if channel is None:
        return ()
    try:
        return channel.backend_class.template_fields
    except UnknownBackend:  # its module is gone: every field rather than none
        return ALL_FIELDS


@admin.register(Template)
class TemplateAdmin(SendTestMixin, ModelAdmin, ImportExportModelAdmin):
    form = TemplateForm
    resource_classes = [TemplateResource]
    import_form_class = ImportForm
    export_form_class = ExportForm
    list_display = ("event", "channel", "language", "subject", "is_active", "state", "updated_at")
    list_filter = ("channel", "language", "is_active")
    search_fields = ("event__key", "subject")
    list_select_related = ("event", "channel")
    change_form_outer_before_template = "admin/campaigns/template/status_panel.html"
    change_form_after_template = "admin/campaigns/template/preview_panel.html"
    actions_detail = ["send_test_detail", "versions_detail"]

    class Media:
        css = {"all": ["notifier/template-admin.css"]}
        js = ["notifier/vendor/template-editor.js"]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        match = request.resolver_match
        if match and match.url_name.endswith("changelist"):
            return qs.defer(*CONTENT_COLUMNS[1:]).annotate(published_number=F("published__number"))
        return qs

    @admin.display(description="Published")
    def state(self, obj: Template) -> str:
        # The list reads no bodies (deferred): whether the draft changed shows on its page.
        return f"v{obj.published_number}" if obj.published_id else "never (not sent)"

    # --- the form: the channel's fields --------------------------------------------------------

    def get_readonly_fields(self, request, obj=None):
        readonly = ("created_at", "updated_at")
        if obj is not None:  # a template's identity: its versions belong to that channel
            readonly = (*IDENTITY, *readonly)
        if not self.has_change_permission(request, obj):
            return (*readonly, *CONTENT_COLUMNS, "layout", "slug", "is_active")
        return readonly

    def get_fieldsets(self, request, obj=None):
        channel = _channel_of(request, obj)
        content = [COLUMNS[spec.name] for spec in _template_fields(channel)]
        identity = (*IDENTITY, "layout", "slug", "is_active")
        if channel is None:
            return ((None, {"fields": identity, "description": self._choose_channel}),)
        if obj is None:
            return (
                (None, {"fields": identity}),
                (f"Content for {channel.name}", {"fields": content}),
            )
        # Editing: the content first, beside its preview; the settings after it.
        return (
            (f"Content for {channel.name}", {"fields": content}),
            ("Template", {"fields": identity}),
        )

    _choose_channel = "Choose the channel: its fields (subject, text, title …) appear then."

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        fields = _template_fields(_channel_of(request, obj))

        class Form(form_class):
            def __init__(self, *args, **inner):
                super().__init__(*args, template_fields=fields, **inner)

        return Form

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        channel = _channel_of(request, None)
        if channel is not None and "layout" not in initial:
            default = Layout.objects.filter(channel=channel, is_default=True).first()
            if default is not None:
                initial["layout"] = default.pk
        source = request.GET.get("copy_from")
        if source and source.isdigit():  # a translation starts from the source language's
            original = Template.objects.filter(pk=source).first()
            if original is not None and self.has_view_permission(request, original):
                initial.update(original.content())
                initial.setdefault("layout", original.layout_id)
        return initial

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["template_fields"] = _template_fields(_channel_of(request, obj))
        context["can_publish"] = self.has_publish_permission(request)
        if obj is not None:
            context["siblings"] = obj.event.templates.filter(channel=obj.channel_id).order_by(
                "language"
            )
            context["variables"] = obj.event.variables
        elif str(request.GET.get("event", "")).isdigit():
            event = Event.objects.filter(pk=request.GET["event"]).first()
            context["variables"] = event.variables if event else []
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- permissions -----------------------------------------------------------------------

    def has_publish_permission(self, request) -> bool:
        return request.user.has_perm("campaigns.publish_template")

    def send_test_run(self, obj, address):
        return template_test_send(template=obj, address=address)

    # --- urls --------------------------------------------------------------------------------

    def get_urls(self):
        def view(route, func, name):
            return path(route, self.admin_site.admin_view(func), name=f"campaigns_template_{name}")

        return [
            view("preview/", self.preview_view, "preview"),
            view("preview/recipients/", self.recipients_view, "preview_recipients"),
            view("<int:object_id>/publish/", self.publish_view, "publish"),
            view("<int:object_id>/versions/", self.versions_view, "versions"),
            view("<int:object_id>/versions/diff/", self.diff_view, "diff"),
            view("<int:object_id>/versions/<int:number>/rollback/", self.rollback_view, "rollback"),
            *super().get_urls(),
        ]

    def _template(self, request, object_id, *, publish=False) -> Template:
        obj = get_object_or_404(Template.objects.select_related("event", "channel"), pk=object_id)
        if not self.has_view_permission(request, obj) or (
            publish and not self.has_publish_permission(request)
        ):
            raise PermissionDenied
        return obj

    def _back(self, obj):
        return redirect(reverse("admin:campaigns_template_change", args=[obj.pk]))

    # --- publishing and versions -----------------------------------------------------------------

    def publish_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self._template(request, object_id, publish=True)
        try:
            version = template_publish(
                template=obj, user=request.user, note=request.POST.get("note", "").strip()
            )
        except PublishError as error:
            self.message_user(request, f"Not published: {error}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Published v{version.number}: messages made from now on use it; those already "
                "planned keep their version.",
                messages.SUCCESS,
            )
        return self._back(obj)

    @action(description="Versions", url_path="versions-link", icon="history")
    def versions_detail(self, request, object_id):
        return redirect(reverse("admin:campaigns_template_versions", args=[object_id]))

    def versions_view(self, request, object_id):
        obj = self._template(request, object_id)
        return self._page(
            request,
            obj,
            "versions.html",
            f"Versions of {obj}",
            versions=template_versions(obj),
            can_publish=self.has_publish_permission(request),
        )

    def diff_view(self, request, object_id):
        obj = self._template(request, object_id)
        numbers = sorted({int(n) for n in request.GET.getlist("v") if n.isdigit()})
        if len(numbers) != 2:
            self.message_user(request, "Choose two versions to compare.", messages.WARNING)
            return redirect(reverse("admin:campaigns_template_versions", args=[obj.pk]))
        found = {v.number: v for v in obj.versions.filter(number__in=numbers)}
        if len(found) != 2:
            raise Http404(f"{obj} has no v{numbers[0]} or no v{numbers[1]}")
        older, newer = found[numbers[0]], found[numbers[1]]
        return self._page(
            request,
            obj,
            "diff.html",
            f"{obj}: v{older.number} → v{newer.number}",
            older=older,
            newer=newer,
            diffs=versions_diff(older, newer),
        )

    def rollback_view(self, request, object_id, number):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self._template(request, object_id, publish=True)
        version = get_object_or_404(TemplateVersion, template=obj, number=number)
        try:
            new = template_rollback(template=obj, version=version, user=request.user)
        except PublishError as error:
            self.message_user(request, f"Not rolled back: {error}", messages.ERROR)
        else:
            self.message_user(
                request,
                f"Rolled back: v{new.number} is v{version.number} again, and so is the draft.",
                messages.SUCCESS,
            )
        return redirect(reverse("admin:campaigns_template_versions", args=[obj.pk]))

    def _page(self, request, obj, template, title, **extra):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "original": obj,
            **extra,
        }
        return TemplateResponse(request, f"admin/campaigns/template/{template}", context)

    # --- the live preview ----------------------------------------------------------------------

    def recipients_view(self, request):
        """The options of the preview's recipient picker: users and contacts matching ``q``
        that the operator may see."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        found = preview_recipients_search(query=request.GET.get("q", ""), user=request.user)
        return TemplateResponse(
            request,
            "admin/campaigns/template/_recipient_options.html",
            {"found": found, "chosen": request.GET.get("preview_recipient", "")},
        )

    def preview_view(self, request):
        """The live preview (htmx): renders the form's current fields, never saves."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        data = request.POST
        event = Event.objects.filter(pk=_id(data.get("event"))).first()
        original = (
            Template.objects.filter(pk=_id(data.get("template")))
            .select_related("event", "channel", "layout__published")
            .first()
        )
        if original is not None:  # its identity is read-only: the form does not post it
            event = original.event
        channel = (
            original.channel
            if original is not None
            else ChannelConfig.objects.filter(pk=_id(data.get("channel"))).first()
        )
        fields = _template_fields(channel)
        raw = data.get("preview_context", "").strip()
        context, problem = (event.sample_context() if event else {}), ""
        context |= {  # typed field by field
            name.removeprefix("preview_var__"): value
            for name, value in data.items()
            if name.startswith("preview_var__")
        }
        if event is not None and event.digested:  # what a digest's template gets
            context["digest"] = digest_sample(event.sample_context())
        if raw:
            try:
                context |= json_parse(raw, what="the field", expect=dict)
            except InvalidJSON as error:
                problem = f'sample values: {error} (like {{"order_id": "A-1"}})'
        recipient, recipient_note = None, ""
        if data.get("preview_recipient"):
            recipient = preview_recipient(ref=data["preview_recipient"], user=request.user)
            if recipient is None:
                problem = problem or "that recipient is not there (or not yours to see)"
            elif event is not None and channel is not None:
                language = data.get("language") or (original.language if original else "")
                chosen = template_for_recipient(event, channel.pk, recipient)
                if not recipient.get("language"):
                    recipient["language"] = language
                if chosen is not None and chosen.language != language:
                    recipient_note = (
                        f"{recipient.get('name') or 'This recipient'} would get the "
                        f"{chosen.language} template, not this one."
                    )
        if problem:
            preview = Preview(errors=[problem])
        else:
            preview = template_render_preview(
                variables=event.variables if event else [],
                sources=_preview_sources(data, original, fields),
                context=context,
                fields=fields,
                recipient=recipient,
                sms=bool(channel and channel.backend_class.category == "sms"),
            )
        return TemplateResponse(
            request,
            "admin/campaigns/template/preview.html",
            {
                "preview": preview,
                "recipient": recipient,
                "recipient_note": recipient_note,
                "is_email": bool(channel and channel.backend_class.category == "email"),
            },
        )


def _id(value) -> int | None:
    value = str(value or "")
    return int(value) if value.isdigit() else None


def _preview_sources(data, original: Template | None, fields) -> Sources:
    """The sources the form holds now: the channel's fields as typed, in the chosen layout
    (its published version, else its draft; the layout's draft when previewing a layout
    change), with the partials as they are."""
    used = {COLUMNS[spec.name] for spec in fields} if fields else set(CONTENT_COLUMNS)
    content = {
        name: (data.get(column, "") if column in used else "") for name, column in COLUMNS.items()
    }
    layout_html = layout_text = ""
    layout = Layout.objects.filter(pk=_id(data.get("layout"))).select_related("published").first()
    if layout is None and original is not None and "layout" not in data:
        layout = original.layout
    if layout is not None:
        shown = layout if data.get("layout_draft") else (layout.published or layout)
        layout_html, layout_text = shown.html_body, shown.text_body
    return Sources(
        **content,
        layout_html=layout_html,
        layout_text=layout_text,
        partials=dict(Partial.objects.values_list("name", "body")),
    )
