"""Service API keys (``/api/v1/``): superusers only (no role is granted them), since a key
acts for no person and may send to anyone. A new key is shown once, after saving."""

from django.contrib import admin, messages
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from unfold.admin import ModelAdmin
from unfold.decorators import action

from campaigns.models import ServiceKey


@admin.register(ServiceKey)
class ServiceKeyAdmin(ModelAdmin):
    list_display = (
        "__str__",
        "can_trigger",
        "all_events",
        "can_read_messages",
        "can_manage_optouts",
        "rate_limit",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("can_trigger", "can_read_messages", "can_manage_optouts")
    search_fields = ("name", "prefix")
    filter_horizontal = ("events",)
    readonly_fields = ("prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    fieldsets = (
        (None, {"fields": ("name", "prefix", "rate_limit")}),
        (
            "Scopes",
            {
                "fields": (
                    "can_trigger",
                    "all_events",
                    "events",
                    "can_read_messages",
                    "can_manage_optouts",
                )
            },
        ),
        ("Use", {"fields": ("created_by", "created_at", "last_used_at", "revoked_at")}),
    )
    actions = ["revoke_selected"]
    actions_row = ["revoke_row"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoked, never deleted: the record of who could do what stays

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        raw = obj.key_new()
        obj.created_by = request.user
        super().save_model(request, obj, form, change)
        self.message_user(
            request,
            f"The new key is {raw} — copy it now: it is not shown again.",
            messages.WARNING,
        )

    def _revoke(self, queryset) -> int:
        return queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())

    @action(description="Revoke (stops working at once)", permissions=["change"])
    def revoke_selected(self, request, queryset):
        count = self._revoke(queryset)
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)

    @action(
        description="Revoke",
        permissions=["change"],
        dialog={
            "title": "Revoke this key?",
            "description": "Requests with it are refused (401) from now on. This cannot be "
            "undone: make a new key instead.",
            "form_submit_text": "Revoke",
        },
    )
    def revoke_row(self, request, form, object_id):
        count = self._revoke(ServiceKey.objects.filter(pk=object_id))
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)
        return HttpResponse(
            headers={"HX-Redirect": reverse("admin:campaigns_servicekey_changelist")}
        )
