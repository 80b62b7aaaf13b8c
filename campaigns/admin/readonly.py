"""The base of the admin pages of rows written about messages (the decision trail, the daily
counts of deleted messages): read-only, for who may read messages."""

from unfold.admin import ModelAdmin


class MessageRecordAdmin(ModelAdmin):
    """Read-only for who may view messages (Support, superusers); nobody adds, changes or
    deletes these rows here: only the send path and the retention write them."""

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
