from django import forms
from django.contrib import admin
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from import_export.admin import ImportExportModelAdmin
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.import_export.forms import ExportForm, ImportForm

from campaigns.admin.coverage import coverage_summary, coverage_table
from campaigns.admin.resources import EventResource
from campaigns.admin.variables import VariablesField
from campaigns.admin.windows import EventWindowInline, windows_summary
from campaigns.domain.untrusted_json import ADMIN_FORMFIELD_OVERRIDES
from campaigns.models import EscalationStep, Event, Template


class TemplateInline(TabularInline):
    model = Template
    fields = ("channel", "language", "subject", "is_active")
    extra = 0
    show_change_link = True


class EscalationStepInline(TabularInline):
    """README "Fallback and escalation": the later steps of a trigger that gives no
    ``then=``, e.g. email after 15 minutes, then SMS after an hour, if the earlier message
    was not seen (or not delivered)."""

    model = EscalationStep
    fields = ("position", "channel", "delay_minutes", "condition")
    extra = 0
    verbose_name_plural = "Escalation (if not seen, then …)"


class EventForm(forms.ModelForm):
    variables = VariablesField(
        help_text="What the host site passes to notify(), and templates print: a name for "
        "templates, a label and help for people, a sample for previews, and its type."
    )

    class Meta:
        model = Event
        fields = ("variables",)  # the admin adds the others it shows


@admin.register(Event)
class EventAdmin(ModelAdmin, ImportExportModelAdmin):
    form = EventForm
    resource_classes = [EventResource]
    import_form_class = ImportForm
    export_form_class = ExportForm
    list_display = ("key", "name", "variable_list", "templates", "availability", "is_active")
    list_filter = ("is_active",)
    search_fields = ("key", "name", "description")
    readonly_fields = ("template_coverage", "declared_in", "created_at", "updated_at")
    inlines = [EventWindowInline, EscalationStepInline, TemplateInline]
    # Named here: the form's Meta names only the field it overrides, and without fieldsets
    # the admin would show only that one.
    fieldsets = [
        (None, {"fields": ("key", "name", "description", "variables", "is_active")}),
        ("Sending", {"fields": ("trigger", "default_language", "check_validity")}),
        (
            "Preference centre and unsubscribe",
            {
                "fields": (
                    "user_configurable",
                    "mandatory",
                    "mandatory_reason",
                    "marketing",
                    "unsubscribe_scope",
                )
            },
        ),
        ("Digests", {"fields": ("digest", "digest_at", "digest_choice")}),
        ("Expiry and retention", {"fields": ("expires_after", "delete_after_processing")}),
        (
            "Templates and origin",
            {"fields": ("template_coverage", "declared_in", "created_at", "updated_at")},
        ),
    ]
    formfield_overrides = ADMIN_FORMFIELD_OVERRIDES

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("windows", "templates__channel")

    @admin.display(description="Templates")
    def templates(self, obj: Event) -> str:
        return coverage_summary(obj)

    @admin.display(description="Template coverage")
    def template_coverage(self, obj: Event) -> str:
        return coverage_table(obj) if obj.pk else "Save the event to add templates."

    @admin.display(description="Availability")
    def availability(self, obj: Event) -> str:
        return windows_summary(obj)

    @admin.display(description="Variables")
    def variable_list(self, obj: Event) -> str:
        """Each variable with its label and sample; its help text on hover."""
        if not obj.variables:
            return "—"
        return format_html_join(
            mark_safe("<br>"),
            '<span title="{}"><code>{}</code> {} <span class="text-base-400">e.g. {}</span></span>',
            (
                (v.get("help", ""), v["name"], v.get("label", ""), v.get("sample", "—"))
                for v in obj.variables
            ),
        )
