"""The decision trail, read-only: why a call or a campaign wrote no message for someone. Who
may read messages may read it (a person's timeline shows the same rows)."""

from django.contrib import admin
from unfold.admin import ModelAdmin

from campaigns.models import Decision


@admin.register(Decision)
class DecisionAdmin(ModelAdmin):
    list_display = (
        "created_at",
        "event",
        "channel",
        "reason",
        "user",
        "address",
        "campaign",
        "call",
    )
    list_filter = ("reason", "channel", "event", "campaign")
    search_fields = ("address", "user__username", "user__email", "call")
    list_select_related = ("event", "user", "campaign")
    date_hierarchy = "created_at"

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("campaigns.view_message")

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
