"""Audiences, contact lists and campaigns in the admin.

A campaign's change page carries its panel: the buttons of what can be done now (dry run,
test send, schedule, pause, resume, cancel, report), and while it runs a progress bar that
htmx polls. State changes are POSTs (CSRF-protected) that need ``run_campaign``.
"""

from __future__ import annotations

import csv

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import (
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from import_export.admin import ImportExportModelAdmin
from import_export.forms import ConfirmImportForm
from unfold.admin import ModelAdmin
from unfold.contrib.import_export.forms import ExportForm, ImportForm
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldBooleanWidget

from campaigns.admin.resources import ContactResource
from campaigns.admin.variables import ValuesField
from campaigns.broadcast.audiences import audience_size
from campaigns.broadcast.control import campaign_cancel, campaign_pause, campaign_resume
from campaigns.broadcast.dry_run import campaign_dry_run, dry_run_start, dry_run_state
from campaigns.broadcast.fanout import (
    campaign_finish_if_done,
    campaign_schedule,
    campaign_unschedule,
)
from campaigns.broadcast.planning import campaign_channels, campaign_versions
from campaigns.broadcast.report import (
    campaign_message_counts,
    campaign_message_rows,
    campaign_messages,
    campaign_progress,
    campaign_report,
    campaign_report_rows,
)
from campaigns.broadcast.testsend import campaign_test_send
from campaigns.conf import app_settings
from campaigns.domain.context import context_validate
from campaigns.domain.untrusted_json import ADMIN_FORMFIELD_OVERRIDES
from campaigns.exceptions import CampaignError, NotifierError
from campaigns.models import Audience, AudienceKind, Campaign, CampaignStatus, Contact, Event


@admin.register(Audience)
class AudienceAdmin(ModelAdmin):
    list_display = ("name", "kind", "size", "updated_at")
    list_filter = ("kind",)
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": ("name", "kind", "description")}),
        ("Users in a group", {"fields": ("group",)}),
        (
            "Saved filter (active users matching every condition set)",
            {
                "fields": (
                    "joined_after",
                    "joined_before",
                    "logged_in_since",
                    "email_domain",
                    "language",
                )
            },
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(contact_count=Count("contacts"))

    @admin.display(description="Size")
    def size(self, obj: Audience) -> int:
        if obj.kind == AudienceKind.CONTACTS:
            return obj.contact_count
        return audience_size(obj)

    def get_readonly_fields(self, request, obj=None):
        return ("size_now",) if obj else ()

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj:
            return ((None, {"fields": ("size_now",)}), *fieldsets)
        return fieldsets

    @admin.display(description="Recipients now")
    def size_now(self, obj: Audience) -> str:
        size = audience_size(obj)
        if obj.kind == AudienceKind.CONTACTS:
            return f"{size} contacts (import more under Contacts → Import)"
        return f"{size} active users"


SKIP_INVALID_HELP = (
    "Import the valid rows and list the others (row, column, problem) instead of importing "
    "nothing until the file is corrected."
)


class ContactImportForm(ImportForm):
    audience = forms.ModelChoiceField(
        queryset=Audience.objects.filter(kind=AudienceKind.CONTACTS),
        label="Contact list",
        widget=UnfoldAdminSelectWidget,
        # Help texts are shown as HTML: no angle brackets.
        help_text="Columns: email, phone, name, language, tz; any other column is kept and "
        'usable in templates: a "plan" column as {{ recipient.plan }}.',
    )
    skip_invalid = forms.BooleanField(
        label="Skip rows with errors",
        required=False,
        widget=UnfoldBooleanWidget,
        help_text=SKIP_INVALID_HELP,
    )


class ContactConfirmImportForm(ConfirmImportForm):
    audience = forms.ModelChoiceField(
        queryset=Audience.objects.filter(kind=AudienceKind.CONTACTS), widget=forms.HiddenInput
    )
    # The preview's choice, so the import skips the rows the preview listed.
    skip_invalid = forms.BooleanField(required=False, widget=forms.HiddenInput)


@admin.register(Contact)
class ContactAdmin(ModelAdmin, ImportExportModelAdmin):
    resource_classes = [ContactResource]
    import_form_class = ContactImportForm
    confirm_form_class = ContactConfirmImportForm
    import_template_name = "admin/campaigns/contact/import.html"
    export_form_class = ExportForm
    # import-export writes one LogEntry per imported row (10,000 for a big file); the import
    # writes one entry on the contact list instead (process_result).
    skip_admin_log = True
    list_display = ("__str__", "audience", "name", "language", "tz", "created_at")
    list_filter = ("audience",)
    search_fields = ("email", "phone", "name")
    list_select_related = ("audience",)
    formfield_overrides = ADMIN_FORMFIELD_OVERRIDES

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "audience":  # contacts belong to contact lists only
            kwargs["queryset"] = Audience.objects.filter(kind=AudienceKind.CONTACTS)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_import_resource_kwargs(self, request, **kwargs):
        form = kwargs.get("form")
        valid = form is not None and form.is_valid()
        return {
            **super().get_import_resource_kwargs(request, **kwargs),
            "audience": form.cleaned_data.get("audience") if valid else None,
            "skip_invalid": bool(form.cleaned_data.get("skip_invalid")) if valid else False,
        }

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["audience"] = import_form.cleaned_data["audience"].pk
            initial["skip_invalid"] = import_form.cleaned_data.get("skip_invalid", False)
        return initial

    def process_result(self, result, request):
        audience = getattr(result, "audience", None)
        if audience is not None:
            LogEntry.objects.log_actions(
                request.user.pk,
                [audience],
                CHANGE,
                change_message=f"Imported contacts: {import_summary(result)}.",
                single_object=True,
            )
        return super().process_result(result, request)

    def add_success_message(self, result, request):
        text = f"Import finished: {import_summary(result)}."
        skipped = getattr(result, "skipped_invalid", [])
        if not skipped:
            messages.success(request, text)
            return
        listed = [
            f"Row {item['number']}"
            + (f" ({item['field']})" if item["field"] else "")
            + f": {item['message'].rstrip('.')}."
            for item in skipped[:SKIPPED_IN_MESSAGE]
        ]
        if len(skipped) > SKIPPED_IN_MESSAGE:
            listed.append(f"And {len(skipped) - SKIPPED_IN_MESSAGE} more.")
        messages.warning(request, " ".join([text, "Skipped for errors:", *listed]))


SKIPPED_IN_MESSAGE = 10


def import_summary(result) -> str:
    """ "3 new, 1 updated, 2 unchanged, 1 skipped for errors" of a contact import."""
    invalid = getattr(result, "invalid_count", 0)
    totals = result.totals
    parts = [
        f"{totals['new']} new",
        f"{totals['update']} updated",
        f"{getattr(result, 'unchanged_count', totals['skip'])} unchanged",
    ]
    if invalid:
        parts.append(f"{invalid} skipped for errors")
    return ", ".join(parts)


class CampaignForm(forms.ModelForm):
    context = ValuesField(
        label="Values",
        help_text="The event's variables, as its templates print them; each is checked "
        "against its type.",
    )

    class Meta:
        model = Campaign
        fields = (
            "name",
            "event",
            "channels",
            "audience",
            "context",
            "send_at",
            "local_time",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        event = self._event()
        if "context" in self.fields:
            self.fields["context"].set_variables(event.variables if event else [])
            self.fields["context"].widget.attrs["no_event"] = event is None
        if "event" in self.fields:  # another event: its variables' inputs come in its place
            select = self.fields["event"].widget
            getattr(select, "widget", select).attrs.update(
                {
                    "hx-get": reverse("admin:campaigns_campaign_values"),
                    "hx-target": "#campaign-values",
                    "hx-swap": "outerHTML",
                    "hx-trigger": "change",
                    "hx-include": "this",
                }
            )

    def _event(self) -> Event | None:
        raw = self.data.get("event") if self.is_bound else self.initial.get("event")
        if raw not in (None, ""):
            return Event.objects.filter(pk=raw).first() if str(raw).isdigit() else None
        return self.instance.event if self.instance.event_id else None

    def clean(self):
        data = super().clean()
        event, context = data.get("event"), data.get("context")
        if context is None:
            context = data["context"] = {}
        if event is not None and "context" not in self.errors:
            try:
                data["context"] = context_validate(event=event, context=context)
            except NotifierError as error:
                self.add_error("context", str(error))
        return data


_UNDER_WAY = (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)


@admin.register(Campaign)
class CampaignAdmin(ModelAdmin):
    form = CampaignForm
    list_display = (
        "name",
        "event",
        "audience",
        "status",
        "recipients_total",
        "send_at",
        "started_at",
        "finished_at",
    )
    list_filter = ("status", "event")
    search_fields = ("name",)
    list_select_related = ("event", "audience")
    filter_horizontal = ("channels",)
    # Outside the change form: the panel holds forms of its own, and a form nested in another
    # is dropped by the browser (its buttons would submit the change form instead).
    change_form_outer_before_template = "admin/campaigns/campaign/panel.html"

    def has_run_permission(self, request) -> bool:
        return request.user.has_perm("campaigns.run_campaign")

    def has_delete_permission(self, request, obj=None):
        # A campaign under way is cancelled, not deleted: deleting it would drop its pending
        # chunks and leave its queued messages beyond pause and cancel.
        if obj is not None and obj.status in _UNDER_WAY:
            return False
        return super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not obj.is_editable:
            return (*CampaignForm.Meta.fields, "status")
        return ("status",)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["campaign"] = obj
            context["can_run"] = self.has_run_permission(request)
            if obj.status != CampaignStatus.DRAFT:
                context["progress"] = campaign_progress(obj)
                context["pinned"] = sorted(
                    campaign_versions(obj).values(), key=lambda v: (v.template_id, v.number)
                )
        if obj is not None and obj.event_id:
            context["event_variables"] = obj.event.variables
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        def view(name, func):
            return path(
                f"<int:object_id>/{name}/",
                self.admin_site.admin_view(func),
                name=f"campaigns_campaign_{name.replace('-', '_').replace('.', '_')}",
            )

        return [
            view("dry-run", self.dry_run_view),
            view("dry-run-status", self.dry_run_status_view),
            view("test-send", self.test_send_view),
            view("schedule", self.schedule_view),
            view("unschedule", self.unschedule_view),
            view("pause", self.pause_view),
            view("resume", self.resume_view),
            view("cancel", self.cancel_view),
            view("progress", self.progress_view),
            view("report", self.report_view),
            view("report.csv", self.report_csv_view),
            view("messages", self.messages_view),
            path(
                "values/",
                self.admin_site.admin_view(self.values_view),
                name="campaigns_campaign_values",
            ),
            *super().get_urls(),
        ]

    def values_view(self, request):
        """The values' inputs for the event chosen in the form (htmx swaps them in)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        event = Event.objects.filter(pk=request.GET.get("event") or 0).first()
        field = ValuesField()
        field.set_variables(event.variables if event else [])
        field.widget.attrs["no_event"] = event is None
        return HttpResponse(field.widget.render("context", {}))

    # --- helpers --------------------------------------------------------------------------

    def _get(self, request, object_id, *, run=False) -> Campaign:
        if not self.has_view_permission(request) or (run and not self.has_run_permission(request)):
            raise PermissionDenied
        return get_object_or_404(Campaign.objects.select_related("event", "audience"), pk=object_id)

    def _page(self, request, campaign, template, title, **extra):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "original": campaign,
            "campaign": campaign,
            **extra,
        }
        return TemplateResponse(request, f"admin/campaigns/campaign/{template}", context)

    def _back(self, campaign):
        return redirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    def _state_change(self, request, object_id, run, done):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        campaign = self._get(request, object_id, run=True)
        try:
            result = run(campaign)
        except CampaignError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(request, done(result), messages.SUCCESS)
        return self._back(campaign)

    # --- views ----------------------------------------------------------------------------

    def dry_run_view(self, request, object_id):
        """Small audiences: the dry run in this request. Large ones: an RQ job, started on
        the first visit (or by "Run again"), whose progress the page polls."""
        campaign = self._get(request, object_id)
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        if audience_size(campaign.audience) <= app_settings.DRY_RUN_INLINE_LIMIT:
            return self._dry_run_page(request, campaign, campaign_dry_run(campaign))
        state = dry_run_state(campaign)
        if request.method == "POST" or state is None:
            state = dry_run_start(campaign)
        if state.state != "done":
            return self._page(
                request,
                campaign,
                "dry_run.html",
                f"Dry run of {campaign}",
                state=state,
                pending=True,
            )
        return self._dry_run_page(request, campaign, state.report, state=state)

    def dry_run_status_view(self, request, object_id):
        campaign = self._get(request, object_id)
        state = dry_run_state(campaign)
        response = TemplateResponse(
            request,
            "admin/campaigns/campaign/_dry_run_status.html",
            {"campaign": campaign, "state": state},
        )
        if state is not None and state.state == "failed":
            response.status_code = 286  # htmx: stop polling; the page offers "Run again"
        elif state is None or state.state == "done":
            response["HX-Refresh"] = "true"  # the page shows the result (or starts again)
        return response

    def _dry_run_page(self, request, campaign, report, *, state=None):
        planned = sorted(report.planned.items())
        skipped = sorted(report.skipped.items(), key=lambda item: (-item[1], item[0]))
        return self._page(
            request,
            campaign,
            "dry_run.html",
            f"Dry run of {campaign}",
            report=report,
            planned=[(channel, language, n) for (channel, language), n in planned],
            skipped=[(channel, reason, n) for (channel, reason), n in skipped],
            scheduled=sorted(report.scheduled.items()),
            per_channel=sorted(report.per_channel().items()),
            can_run=self.has_run_permission(request),
            state=state,
        )

    def test_send_view(self, request, object_id):
        campaign = self._get(request, object_id, run=True)
        form = CampaignTestSendForm(request.POST or None)
        rows = None
        if request.method == "POST" and form.is_valid():
            rows = campaign_test_send(campaign, form.cleaned_data["addresses"])
        return self._page(
            request, campaign, "test_send.html", f"Send a test of {campaign}", form=form, rows=rows
        )

    def schedule_view(self, request, object_id):
        def done(campaign):
            if campaign.status != CampaignStatus.SCHEDULED:
                return f"Sending to {campaign.recipients_total} recipients."
            if campaign.local_time is not None:
                day = timezone.localtime(campaign.send_at or timezone.now()).date()
                return (
                    f"Scheduled: it delivers at {campaign.local_time:%H:%M} in each "
                    f"recipient's timezone on {day:%Y-%m-%d}."
                )
            when = timezone.localtime(campaign.send_at).strftime("%Y-%m-%d %H:%M %Z")
            return f"Scheduled for {when}."

        return self._state_change(request, object_id, campaign_schedule, done)

    def unschedule_view(self, request, object_id):
        return self._state_change(
            request, object_id, campaign_unschedule, lambda _: "Back to draft."
        )

    def pause_view(self, request, object_id):
        return self._state_change(
            request, object_id, campaign_pause, lambda n: f"Paused: {n} messages are held."
        )

    def resume_view(self, request, object_id):
        return self._state_change(
            request, object_id, campaign_resume, lambda n: f"Resumed: {n} messages queued again."
        )

    def cancel_view(self, request, object_id):
        def done(result):
            text = f"Cancelled: {result.stopped} messages will not be sent"
            if result.sending:
                text += (
                    f"; {result.sending} were being sent: their workers stop at the next "
                    "message, and the progress below shows when none is left"
                )
            return text + "."

        return self._state_change(request, object_id, campaign_cancel, done)

    def progress_view(self, request, object_id):
        campaign = self._get(request, object_id)
        if campaign.status == CampaignStatus.RUNNING and campaign_finish_if_done(campaign.pk):
            campaign.refresh_from_db()  # the poll finishes a campaign as soon as it is done
        progress = campaign_progress(campaign)
        response = TemplateResponse(
            request,
            "admin/campaigns/campaign/_progress.html",
            {"campaign": campaign, "progress": progress},
        )
        if progress.finished:
            response.status_code = 286  # htmx: stop polling
        if request.GET.get("status", campaign.status) != campaign.status:
            # The panel's buttons were drawn for another state: htmx reloads the page.
            response["HX-Refresh"] = "true"
        return response

    def report_view(self, request, object_id):
        campaign = self._get(request, object_id)
        report = campaign_report(campaign)
        statuses = sorted({s for counts in report.totals.values() for s in counts})
        totals = [
            (channel, language, [counts.get(s, 0) for s in statuses], sum(counts.values()))
            for (channel, language), counts in sorted(report.totals.items())
        ]
        return self._page(
            request,
            campaign,
            "report.html",
            f"Report of {campaign}",
            report=report,
            statuses=statuses,
            totals=totals,
            progress=campaign_progress(campaign),
            messages_url=self._messages_url(request, campaign),
            decisions_url=(
                f"{reverse('admin:campaigns_decision_changelist')}?campaign__id__exact={campaign.pk}"
                if request.user.has_perm("campaigns.view_message")
                else ""
            ),
        )

    def _messages_url(self, request, campaign) -> str:
        """Who may use the message admin (Support, superusers) gets it, filtered to the
        campaign; everyone else this admin's read-only page of the campaign's messages."""
        if request.user.has_perm("campaigns.view_message"):
            changelist = reverse("admin:campaigns_message_changelist")
            return f"{changelist}?campaign__id__exact={campaign.pk}"
        return reverse("admin:campaigns_campaign_messages", args=[campaign.pk])

    def messages_view(self, request, object_id):
        """The campaign's messages, read-only, for whoever may view the campaign: status,
        channel, language, attempts and errors, to a masked address. Its rows come from the
        campaign in the path only; a query parameter other than its filters is refused."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        campaign = self._get(request, object_id)
        filters = {key: request.GET[key] for key in request.GET if key != "page"}
        try:
            rows = campaign_messages(campaign, filters=filters)
        except CampaignError as error:
            return HttpResponseBadRequest(f"{error}\n", content_type="text/plain; charset=utf-8")
        page = Paginator(rows, 100).get_page(request.GET.get("page"))
        return self._page(
            request,
            campaign,
            "messages.html",
            f"Messages of {campaign}",
            page=page,
            rows=campaign_message_rows(page.object_list),
            counts=campaign_message_counts(campaign),
            channels=[channel.key for channel in campaign_channels(campaign)],
            filters=filters,
        )

    def report_csv_view(self, request, object_id):
        campaign = self._get(request, object_id)

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())
        # Addresses as on the campaign's messages page for whoever may not open messages.
        masked = not request.user.has_perm("campaigns.view_message")
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in campaign_report_rows(campaign, masked=masked)),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}.csv"'
        return response


class CampaignTestSendForm(forms.Form):
    addresses = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "autofocus": True}),
        help_text="One per line (or separated by commas): email addresses, phone numbers … "
        "each goes to every campaign channel that takes it.",
    )

    def clean_addresses(self) -> list[str]:
        raw = self.cleaned_data["addresses"].replace(",", "\n")
        addresses = [line.strip() for line in raw.splitlines() if line.strip()]
        if not addresses:
            raise forms.ValidationError("Type at least one address.")
        if len(addresses) > 20:
            raise forms.ValidationError("At most 20 addresses per test.")
        return addresses
