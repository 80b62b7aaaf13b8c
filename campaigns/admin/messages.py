from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action

from campaigns.content.previews import message_render
from campaigns.domain.rendering import TemplateError
from campaigns.models import Message, MessageAttempt
from campaigns.outbox.actions import CANCELLABLE, REQUEUABLE, messages_cancel, messages_requeue


class AttemptInline(TabularInline):
    model = MessageAttempt
    fields = ("number", "status", "error", "provider_id", "at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "attempts"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ModelAdmin):
    list_display = (
        "uuid",
        "event",
        "channel",
        "address",
        "language",
        "status",
        "attempts",
        "created_at",
        "sent_at",
    )
    list_filter = ("status", "channel", "event", "language", "campaign")
    search_fields = ("address", "=uuid", "provider_id", "tag")
    list_select_related = ("event", "channel")
    date_hierarchy = "created_at"
    actions = ["requeue_selected", "cancel_selected"]
    inlines = [AttemptInline]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            qs = qs.defer("text", "html", "context", "recipient", "extra")
        return qs

    def get_readonly_fields(self, request, obj=None):
        return [
            "version",
            "rendered",
            *(field.name for field in Message._meta.fields if field.name != "template_version"),
        ]

    @admin.display(description="Template version")
    def version(self, obj: Message) -> str:
        version = obj.template_version
        if version is None:
            return "—"
        url = reverse("admin:campaigns_template_versions", args=[version.template_id])
        return format_html('<a href="{}">{} v{}</a>', url, obj.template_key, version.number)

    @admin.display(description="Content (made again from its version)")
    def rendered(self, obj: Message) -> str:
        try:
            rendered = message_render(obj)
        except TemplateError as error:
            return f"It does not render: {error}"
        if rendered is None:
            return "Its template version is gone."
        return render_to_string("admin/campaigns/message/rendered.html", {"rendered": rendered})

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("campaigns.change_message")

    def _confirmed_run(self, request, queryset, *, verb, action_name, states, run, done):
        """Django's delete_selected pattern: the first POST shows what would change and asks;
        the confirming POST (``confirm=yes``) runs ``run(queryset) -> count``."""
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": f"{verb}: are you sure?",
                "opts": self.model._meta,
                "verb": verb,
                "action_name": action_name,
                "queryset": queryset.select_related("event", "channel")[:200],
                "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
                "eligible": queryset.filter(status__in=states).count(),
                "total": queryset.count(),
            }
            return TemplateResponse(request, "admin/campaigns/message/confirm_action.html", context)
        count = run(queryset)
        self.message_user(
            request, done.format(count=count), messages.SUCCESS if count else messages.WARNING
        )
        return None

    @action(description="Send again (failed, broken or cancelled ones)", permissions=["resend"])
    def requeue_selected(self, request, queryset):
        return self._confirmed_run(
            request,
            queryset,
            verb="Send again",
            action_name="requeue_selected",
            states=REQUEUABLE,
            run=lambda qs: messages_requeue(queryset=qs),
            done="{count} message(s) queued to be sent again.",
        )

    @action(description="Cancel (those not yet sent)", permissions=["resend"])
    def cancel_selected(self, request, queryset):
        reason = f"cancelled by {request.user}"
        return self._confirmed_run(
            request,
            queryset,
            verb="Cancel",
            action_name="cancel_selected",
            states=CANCELLABLE,
            run=lambda qs: messages_cancel(queryset=qs, reason=reason),
            done="{count} message(s) cancelled.",
        )
