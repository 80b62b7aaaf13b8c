"""The message log: a list that finds a person's messages (their user, name, address), and a
message page with the essentials on top (status, who, what, when, last error, provider
feedback), its content as sent, its attempts, and the technical details folded away. Send
again and Cancel are buttons on the page and on each row, confirmed in unfold's dialog; the
support desk's person search and timeline (``campaigns.admin.people``) hang off it."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from unfold.admin import ModelAdmin
from unfold.decorators import action, display

from campaigns.admin.people import search_page, send_page, timeline_page
from campaigns.models import Message, MessageStatus
from campaigns.outbox.actions import CANCELLABLE, REQUEUABLE, messages_cancel, messages_requeue
from campaigns.outbox.decisions import EXPIRED
from campaigns.support.messages import message_content, message_summary
from campaigns.support.timeline import BADGES

#: What a person reads first on the message page; everything else is folded away.
TECHNICAL = (
    "uuid",
    "escalates_from",
    "escalation_condition",
    "template",
    "template_version",
    "template_key",
    "recipient",
    "context",
    "extra",
    "scheduled_at",
    "expires_at",
    "status_reason",
    "next_attempt_at",
    "lease_until",
    "max_attempts",
    "provider_id",
    "tag",
    "dedupe_key",
    "idempotency_key",
    "content_type",
    "object_id",
    "trigger_user",
    "campaign",
    "seen_at",
    "consumed_at",
    "archived_at",
    "created_at",
    "updated_at",
)


def _next(request, default: str) -> str:
    target = request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


class UserFilter(admin.SimpleListFilter):
    """Messages of one user (``?user=<id>``, as a person's timeline links here): not a list of
    every user, only the one chosen."""

    title = "user"
    parameter_name = "user"

    def lookups(self, request, model_admin):
        value = self.value()
        if not (value and value.isdigit()):
            return []
        user = get_user_model().objects.filter(pk=value).first()
        return [(value, (user.get_full_name() or user.get_username()) if user else value)]

    def queryset(self, request, queryset):
        value = self.value()
        if value:
            return queryset.filter(user_id=value) if value.isdigit() else queryset.none()
        return queryset


class ExpiryFilter(admin.SimpleListFilter):
    """Messages that expired unsent, or that will if not sent in time."""

    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [("expired", "Expired unsent"), ("expires", "Has an expiry")]

    def queryset(self, request, queryset):
        if self.value() == "expired":
            return queryset.filter(status=MessageStatus.CANCELLED, status_reason=EXPIRED)
        if self.value() == "expires":
            return queryset.filter(expires_at__isnull=False)
        return queryset


@admin.register(Message)
class MessageAdmin(ModelAdmin):
    list_display = (
        "uuid",
        "created_at",
        "status_badge",
        "event",
        "channel",
        "address",
        "person",
        "attempts",
        "delivery_status",
        "sent_at",
        "expires_at",
    )
    list_filter = (
        "status",
        ExpiryFilter,
        UserFilter,
        "channel",
        "event",
        "delivery_status",
        "language",
        "campaign",
    )
    # A person by their user (an in-app message's address is the user's id) or an address.
    search_fields = (
        "address",
        "=uuid",
        "provider_id",
        "tag",
        "user__username",
        "user__email",
        "user__first_name",
        "user__last_name",
    )
    list_select_related = ("event", "channel", "user")
    date_hierarchy = "created_at"
    actions = ["requeue_selected", "cancel_selected"]
    actions_row = ["resend_row", "cancel_row"]
    change_form_before_template = "admin/campaigns/message/summary.html"
    fieldsets = [("Technical details", {"classes": ["collapse"], "fields": TECHNICAL})]

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            qs = qs.defer("text", "html", "context", "recipient", "extra")
        return qs

    def get_readonly_fields(self, request, obj=None):
        return TECHNICAL

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_resend_permission(self, request, object_id=None) -> bool:
        return request.user.has_perm("campaigns.change_message")

    def has_send_permission(self, request) -> bool:
        """An ad-hoc message to a person, from their timeline (Support)."""
        return request.user.has_perm("campaigns.send_message")

    # --- list columns ---------------------------------------------------------------------

    @display(
        description="Status",
        ordering="status",
        label={MessageStatus(status).label: badge for status, badge in BADGES.items()},
    )
    def status_badge(self, obj: Message) -> str:
        return obj.get_status_display()

    @display(description="User")
    def person(self, obj: Message):
        """The user it was for, linked to their timeline ("" for a bare address)."""
        if not obj.user_id:
            return ""
        return format_html(
            '<a class="underline" href="{}">{}</a>',
            reverse("admin:campaigns_person", args=["user", obj.user_id]),
            obj.user.get_full_name() or obj.user.get_username(),
        )

    # --- the page -------------------------------------------------------------------------

    def get_urls(self):
        def view(func):
            return self.admin_site.admin_view(func)

        return [
            path(
                "<int:object_id>/summary/",
                view(self.summary_view),
                name="campaigns_message_summary",
            ),
            path("people/", view(self.people_view), name="campaigns_people"),
            path(
                "people/<str:kind>/<path:key>/send/",
                view(self.person_send_view),
                name="campaigns_person_send",
            ),
            path("people/<str:kind>/<path:key>/", view(self.person_view), name="campaigns_person"),
            *super().get_urls(),
        ]

    def _summary_context(self, request, message: Message) -> dict:
        return {
            "summary": message_summary(message),
            "content": message_content(message),
            "may_resend": self.has_resend_permission(request),
            "here": request.get_full_path(),
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        message = self.get_object(request, object_id)
        extra = {**(extra_context or {})}
        if message is not None and self.has_view_permission(request, message):
            extra.update(self._summary_context(request, message))
            extra["here"] = request.path
        return super().change_view(request, object_id, form_url, extra)

    def summary_view(self, request, object_id):
        """The top of the message page again, for its poll while the message is under way."""
        message = get_object_or_404(
            Message.objects.select_related("event", "channel", "user"), pk=object_id
        )
        if not self.has_view_permission(request, message):
            raise PermissionDenied
        context = self._summary_context(request, message)
        context["here"] = reverse("admin:campaigns_message_change", args=[message.pk])
        return TemplateResponse(request, "admin/campaigns/message/_page.html", context)

    def people_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        return search_page(request, self.admin_site)

    def person_view(self, request, kind, key):
        if not self.has_view_permission(request):
            raise PermissionDenied
        response = timeline_page(
            request,
            self.admin_site,
            kind,
            key,
            may_resend=self.has_resend_permission(request),
            may_send=self.has_send_permission(request),
        )
        if response is None:
            raise Http404("No such person")
        return response

    def person_send_view(self, request, kind, key):
        if not self.has_send_permission(request):
            raise PermissionDenied
        response = send_page(request, self.admin_site, kind, key)
        if response is None:
            raise Http404("No such person")
        return response

    # --- send again and cancel --------------------------------------------------------------

    def _one(self, request, object_id, *, run, done: str, nothing: str):
        queryset = Message.objects.filter(pk=object_id)
        count = run(queryset)
        self.message_user(
            request, done if count else nothing, messages.SUCCESS if count else messages.WARNING
        )
        target = _next(request, reverse("admin:campaigns_message_change", args=[object_id]))
        if request.htmx:  # unfold's dialog posts with htmx: it follows HX-Redirect
            return HttpResponse(headers={"HX-Redirect": target})
        return redirect(target)

    @action(
        description="Send again",
        permissions=["resend"],
        icon="send",
        dialog={
            "title": "Send this message again?",
            "description": "It is queued at once with fresh attempts (only a failed, broken or "
            "cancelled message is sent again).",
            "form_submit_text": "Send again",
        },
    )
    def resend_row(self, request, form, object_id):
        return self._one(
            request,
            object_id,
            run=lambda qs: messages_requeue(queryset=qs),
            done="The message is queued to be sent again.",
            nothing="Only a failed, broken or cancelled message can be sent again.",
        )

    @action(
        description="Cancel",
        permissions=["resend"],
        icon="cancel",
        dialog={
            "title": "Cancel this message?",
            "description": "It will not be sent (a message being sent right now is not "
            "stopped). You can send it again later.",
            "form_submit_text": "Cancel the message",
        },
    )
    def cancel_row(self, request, form, object_id):
        reason = f"cancelled by {request.user}"
        return self._one(
            request,
            object_id,
            run=lambda qs: messages_cancel(queryset=qs, reason=reason),
            done="The message is cancelled.",
            nothing="Only a message not yet sent can be cancelled.",
        )

    # --- the list's bulk actions ------------------------------------------------------------

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
