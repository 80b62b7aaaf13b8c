from django.contrib import admin
from unfold.admin import ModelAdmin

from campaigns.models import RecipientProfile


@admin.register(RecipientProfile)
class RecipientProfileAdmin(ModelAdmin):
    list_display = ("user", "timezone", "language", "updated_at")
    search_fields = ("user__username", "user__email")
    autocomplete_fields = ("user",)
