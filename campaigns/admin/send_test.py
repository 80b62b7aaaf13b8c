"""The "Send test" button of templates and channels: asks for an address, sends one real
message through the channel, and shows what the provider answered."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from unfold.decorators import action


class SendTestForm(forms.Form):
    address = forms.CharField(
        max_length=512,
        help_text="An email address, a phone number, a chat id … as the channel expects",
        widget=forms.TextInput(attrs={"autofocus": True}),
    )


class SendTestMixin:
    """Needs ``send_test_run(obj, address) -> TestSendResult``."""

    actions_detail = ["send_test_detail"]

    def has_send_test_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("campaigns.send_test")

    @action(description="Send test", url_path="send-test", permissions=["send_test"], icon="send")
    def send_test_detail(self, request, object_id):
        if not self.has_send_test_permission(request):
            raise PermissionDenied
        obj = get_object_or_404(self.get_queryset(request), pk=object_id)
        form = SendTestForm(request.POST or None)
        result = None
        if request.method == "POST" and form.is_valid():
            result = self.send_test_run(obj, form.cleaned_data["address"].strip())
            level = messages.SUCCESS if result.ok else messages.ERROR
            text = (
                f"Test sent to {form.cleaned_data['address']} ({result.detail})."
                if result.ok
                else f"Test not sent: {result.detail}"
            )
            self.message_user(request, text, level)
            if result.ok:
                info = self.model._meta.app_label, self.model._meta.model_name
                return redirect(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Send a test of {obj}",
            "opts": self.model._meta,
            "original": obj,
            "form": form,
            "result": result,
        }
        return TemplateResponse(request, "admin/campaigns/send_test.html", context)
