from django.contrib import admin, messages
from unfold.admin import ModelAdmin

from campaigns.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(ModelAdmin):
    """Tokens for the inbox's JSON API. A new token is shown once, after saving."""

    list_display = ("__str__", "user", "name", "is_active", "created_at", "last_used_at")
    list_filter = ("is_active",)
    search_fields = ("user__username", "name", "prefix")
    autocomplete_fields = ("user",)
    readonly_fields = ("prefix", "created_at", "last_used_at")
    fields = ("user", "name", "is_active", "prefix", "created_at", "last_used_at")

    def save_model(self, request, obj, form, change):
        if not change:
            raw = obj.key_new()
            super().save_model(request, obj, form, change)
            self.message_user(
                request,
                f"The new token is {raw} — copy it now: it is not shown again.",
                messages.WARNING,
            )
            return
        super().save_model(request, obj, form, change)
