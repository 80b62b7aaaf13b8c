from django.contrib import admin
from unfold.admin import ModelAdmin

from campaigns.models import ChannelAddress


@admin.register(ChannelAddress)
class ChannelAddressAdmin(ModelAdmin):
    list_display = ("address", "kind", "user", "is_active", "is_verified", "updated_at")
    list_filter = ("kind", "is_active", "is_verified")
    search_fields = ("address", "user__username", "user__email")
    autocomplete_fields = ("user",)
    list_select_related = ("user",)
    readonly_fields = ("deactivated_reason", "created_at", "updated_at")
