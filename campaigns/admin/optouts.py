from django.contrib import admin
from import_export.admin import ImportExportModelAdmin
from unfold.admin import ModelAdmin
from unfold.contrib.import_export.forms import ExportForm, ImportForm

from campaigns.admin.resources import OptOutResource
from campaigns.models import OptOut


@admin.register(OptOut)
class OptOutAdmin(ModelAdmin, ImportExportModelAdmin):
    resource_classes = [OptOutResource]
    import_form_class = ImportForm
    export_form_class = ExportForm
    list_display = ("__str__", "user", "address", "channel", "event", "reason", "created_at")
    list_filter = ("channel", "event")
    search_fields = ("address", "user__username", "user__email")
    autocomplete_fields = ("user",)
    list_select_related = ("user", "channel", "event")
