"""The daily counts of the messages the retention deleted, read-only: what the dashboard and
the campaign reports add to the live rows. Who may read messages may read them; nobody edits
them (only the purge writes them). The page says how long what is kept."""

from django.contrib import admin

from campaigns.admin.readonly import MessageRecordAdmin
from campaigns.conf import app_settings
from campaigns.models import MessageDayCount


@admin.register(MessageDayCount)
class MessageDayCountAdmin(MessageRecordAdmin):
    list_display = (
        "day",
        "done_day",
        "event",
        "channel",
        "language",
        "status",
        "campaign",
        "count",
    )
    list_filter = ("status", "channel", "event")
    list_select_related = ("campaign",)
    date_hierarchy = "day"

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "subtitle": retention_policy(),
        }
        return super().changelist_view(request, extra_context=extra_context)


def retention_policy() -> str:
    """One line: what the retention keeps, from the settings in force."""

    def age(days: int) -> str:
        return f"{days} days" if days > 0 else "for ever"

    mode = "deleted" if app_settings.RETENTION_MODE != "content" else "stripped of content"
    inbox_days = app_settings.INBOX_RETENTION_DAYS
    inbox = (
        "until read"
        if inbox_days <= 0
        else f"until read, or {age(app_settings.MESSAGE_RETENTION_DAYS + inbox_days)}"
    )
    return (
        f"Finished messages are kept {age(app_settings.MESSAGE_RETENTION_DAYS)}, then {mode}; "
        f"attempts {age(app_settings.ATTEMPT_RETENTION_DAYS)}; decisions "
        f"{age(app_settings.DECISION_RETENTION_DAYS)}; unread inbox items {inbox}."
    )
