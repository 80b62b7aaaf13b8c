"""Status webhook endpoints and their delivery log.

Endpoints are made and changed by superusers (no role is granted that: an endpoint sends
message data out of the site); Support may look at them and at the delivery log. The signing
secret is shown once when an endpoint is added, and afterwards only to superusers."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.urls import reverse
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action

from campaigns.integrations.webhooks import endpoint_test_send, url_validate
from campaigns.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEventType,
)

EVENT_CHOICES = [(t.value, t.label) for t in WebhookEventType if t != WebhookEventType.TEST]


class WebhookEndpointForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        choices=EVENT_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None chosen: every event, including ones added later",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "event_types", "is_active")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        url_validate(url)
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("__str__", "url", "is_active", "updated_at")
    list_filter = ("is_active",)
    search_fields = ("url", "description")
    readonly_fields = (
        "signing_secret",
        "signing_secret_hidden",
        "created_by",
        "created_at",
        "updated_at",
    )
    actions = ["send_test_event"]
    actions_row = ["send_test_row"]

    def get_fields(self, request, obj=None):
        fields = ["url", "description", "event_types", "is_active"]
        if obj is None:
            return fields
        superuser = request.user.is_active and request.user.is_superuser
        secret = "signing_secret" if superuser else "signing_secret_hidden"
        return [*fields, secret, "created_by", "created_at", "updated_at"]

    @admin.display(description="Signing secret")
    def signing_secret(self, obj) -> str:
        return obj.secret

    @admin.display(description="Signing secret")
    def signing_secret_hidden(self, obj) -> str:
        return "whsec_… (shown to superusers only)"

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        secret = obj.secret_rotate()
        obj.created_by = request.user
        super().save_model(request, obj, form, change)
        self.message_user(
            request,
            f"The signing secret is {secret} — give it to the receiver to verify the "
            "signatures (superusers can see it again on this page).",
            messages.WARNING,
        )

    def _test(self, request, endpoints) -> None:
        for endpoint in endpoints:
            endpoint_test_send(endpoint)
        self.message_user(
            request,
            f"A test event is on its way to {len(endpoints)} endpoint(s): see the deliveries.",
            messages.SUCCESS,
        )

    @action(description="Send test event", permissions=["change"])
    def send_test_event(self, request, queryset):
        self._test(request, list(queryset))

    @action(
        description="Send test event",
        permissions=["change"],
        dialog={
            "title": "Send a test event?",
            "description": "A signed webhook.test event is POSTed to this endpoint; the "
            "delivery log shows the answer.",
            "form_submit_text": "Send",
        },
    )
    def send_test_row(self, request, form, object_id):
        self._test(request, list(WebhookEndpoint.objects.filter(pk=object_id)))
        return HttpResponse(
            headers={"HX-Redirect": reverse("admin:campaigns_webhookdelivery_changelist")}
        )


class WebhookAttemptInline(TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "at",
        "status_code",
        "duration_ms",
        "response_excerpt",
        "error",
        "next_retry_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ModelAdmin):
    """The delivery log: each event for each endpoint, and every try at it."""

    list_display = (
        "webhook_id",
        "event_type",
        "endpoint",
        "state",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("state", "event_type", "endpoint")
    search_fields = ("webhook_id",)
    list_select_related = ("endpoint",)
    inlines = [WebhookAttemptInline]
    readonly_fields = (
        "endpoint",
        "event_type",
        "webhook_id",
        "payload",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "created_at",
        "delivered_at",
    )
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
