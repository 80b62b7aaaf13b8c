"""The decision trail, read-only: why a call or a campaign wrote no message for someone. Who
may read messages may read it (a person's timeline shows the same rows)."""

from django.contrib import admin

from campaigns.admin.readonly import MessageRecordAdmin
from campaigns.models import Decision


@admin.register(Decision)
class DecisionAdmin(MessageRecordAdmin):
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
