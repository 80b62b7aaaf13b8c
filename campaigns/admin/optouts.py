from django.contrib import admin, messages
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from import_export.admin import ImportExportModelAdmin
from unfold.admin import ModelAdmin
from unfold.contrib.import_export.forms import ExportForm, ImportForm
from unfold.decorators import action

from campaigns.admin.resources import OptOutResource
from campaigns.models import OptOut


class ActiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "In force"), ("revoked", "Revoked (turned back on)")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(OptOut)
class OptOutAdmin(ModelAdmin, ImportExportModelAdmin):
    """Opt-outs are the consent record: turning one back on revokes it (who, when, how stay
    on the row); only superusers delete rows (erasure)."""

    resource_classes = [OptOutResource]
    import_form_class = ImportForm
    export_form_class = ExportForm
    list_display = (
        "__str__",
        "user",
        "address",
        "kind",
        "channel",
        "event",
        "source",
        "created_at",
        "revoked_at",
    )
    list_filter = (ActiveFilter, "source", "kind", "channel", "event")
    search_fields = ("address", "user__username", "user__email")
    autocomplete_fields = ("user",)
    list_select_related = ("user", "channel", "event")
    readonly_fields = (
        "source",
        "created_by",
        "created_at",
        "revoked_at",
        "revoked_by",
        "revoked_source",
    )
    actions = ["revoke_selected"]
    actions_row = ["revoke_row"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.source = OptOut.Source.OPERATOR
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def _revoke(self, request, queryset) -> int:
        return queryset.filter(revoked_at__isnull=True).update(
            revoked_at=timezone.now(),
            revoked_by=request.user,
            revoked_source=OptOut.Source.OPERATOR,
        )

    @action(description="Turn back on (revoke; the record stays)", permissions=["change"])
    def revoke_selected(self, request, queryset):
        count = self._revoke(request, queryset)
        self.message_user(request, f"{count} opt-out(s) revoked.", messages.SUCCESS)

    @action(
        description="Turn back on",
        permissions=["change"],
        dialog={
            "title": "Turn this opt-out back on?",
            "description": "The person gets these notifications again. The opt-out stays on "
            "record as revoked, with your name and the time.",
            "form_submit_text": "Turn back on",
        },
    )
    def revoke_row(self, request, form, object_id):
        count = self._revoke(request, OptOut.objects.filter(pk=object_id))
        self.message_user(request, f"{count} opt-out(s) revoked.", messages.SUCCESS)
        return HttpResponse(headers={"HX-Redirect": reverse("admin:campaigns_optout_changelist")})
