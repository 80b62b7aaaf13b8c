"""Digest frequencies people chose in the preference centre (support may change one on a
person's request), and digest items (read-only: they are shown on their message's page)."""

from __future__ import annotations

from django.contrib import admin
from unfold.admin import ModelAdmin

from campaigns.models import DigestItem, DigestPreference


@admin.register(DigestPreference)
class DigestPreferenceAdmin(ModelAdmin):
    list_display = ("event", "user", "address", "frequency", "updated_at")
    list_filter = ("frequency", "event")
    search_fields = ("address", "user__username", "user__email")
    list_select_related = ("event", "user")
    autocomplete_fields = ("user",)
    readonly_fields = ("updated_at",)


@admin.register(DigestItem)
class DigestItemAdmin(ModelAdmin):
    list_display = ("message", "created_at")
    list_select_related = ("message",)
    readonly_fields = ("message", "context", "created_at")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
