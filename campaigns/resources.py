"""Import and export (django-import-export) of opt-outs, events, templates and contacts, so
operators can move templates between a staging and a production site. Rows refer to events and
channels by key; channel configurations (and their secrets) are never exported."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from import_export import fields, resources, widgets

from channels.models import ChannelConfig

from .models import AudienceKind, Contact, Event, OptOut, Template
from .untrusted_json import json_parse


class JSONWidget(widgets.Widget):
    def clean(self, value, row=None, **kwargs):
        if value in (None, ""):
            return []
        if isinstance(value, (list, dict)):
            return value
        return json_parse(value, what="the cell")  # InvalidJSON is a ValueError: a row error

    def render(self, value, obj=None, **kwargs):
        return json.dumps(value, ensure_ascii=False)


class KeyWidget(widgets.ForeignKeyWidget):
    """A foreign key by its ``key``, with an error naming the missing key."""

    def clean(self, value, row=None, **kwargs):
        if value in (None, ""):
            return None
        try:
            return super().clean(value, row, **kwargs)
        except self.model.DoesNotExist:
            raise ValueError(f"no {self.model._meta.verbose_name} with key {value!r}") from None


class OptOutResource(resources.ModelResource):
    user = fields.Field(
        attribute="user",
        column_name="user",
        widget=widgets.ForeignKeyWidget(get_user_model(), field="username"),
    )
    channel = fields.Field(
        attribute="channel", column_name="channel", widget=KeyWidget(ChannelConfig, field="key")
    )
    event = fields.Field(
        attribute="event", column_name="event", widget=KeyWidget(Event, field="key")
    )

    class Meta:
        model = OptOut
        fields = ("user", "address", "channel", "event", "reason")
        import_id_fields = ("user", "address", "channel", "event")
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True


class EventResource(resources.ModelResource):
    variables = fields.Field(attribute="variables", column_name="variables", widget=JSONWidget())

    class Meta:
        model = Event
        fields = (
            "key",
            "name",
            "description",
            "variables",
            "default_language",
            "is_active",
            "trigger",
            "delete_after_processing",
            "check_validity",
            "user_configurable",
            "mandatory",
            "marketing",
            "unsubscribe_scope",
        )
        import_id_fields = ("key",)
        clean_model_instances = True
        skip_unchanged = True


class TemplateResource(resources.ModelResource):
    event = fields.Field(
        attribute="event", column_name="event", widget=KeyWidget(Event, field="key")
    )
    channel = fields.Field(
        attribute="channel", column_name="channel", widget=KeyWidget(ChannelConfig, field="key")
    )

    class Meta:
        model = Template
        fields = (
            "event",
            "channel",
            "language",
            "subject",
            "text_body",
            "html_body",
            "slug",
            "is_active",
        )
        import_id_fields = ("event", "channel", "language")
        clean_model_instances = True  # a template that does not compile is a row error
        skip_unchanged = True


def _cell(value) -> str:
    """A spreadsheet cell as text (XLSX gives 42 as 42.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class ContactResource(resources.ModelResource):
    """A contact list row: ``email``, ``phone``, ``name``, ``language``, ``tz`` (or
    ``timezone``); every other column is kept in ``data`` and reaches templates as
    ``{{ recipient.<column> }}``. Rows match existing contacts of the same list by email,
    else by phone, so importing a file again updates instead of doubling."""

    KNOWN = ("email", "phone", "name", "language", "tz")
    data = fields.Field(attribute="data", column_name="data", widget=JSONWidget())

    def __init__(self, audience=None, **kwargs):
        super().__init__(**kwargs)
        self.audience = audience

    class Meta:
        model = Contact
        fields = ("email", "phone", "name", "language", "tz", "data")
        import_id_fields = ("email",)
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True

    def get_queryset(self):
        return Contact.objects.filter(audience=self.audience)

    def before_import(self, dataset, **kwargs):
        if self.audience is None:
            raise ValueError("choose the contact list to import into")
        if self.audience.kind != AudienceKind.CONTACTS:
            raise ValueError(f"{self.audience.name!r} is not an imported contact list")
        headers = [str(h or "").strip().lower() for h in dataset.headers]
        dataset.headers = ["tz" if h == "timezone" else h for h in headers]
        if "email" not in dataset.headers and "phone" not in dataset.headers:
            raise ValueError("the file needs an 'email' or a 'phone' column")
        for name in ("email", "phone"):
            if name not in dataset.headers:
                dataset.append_col([""] * len(dataset), header=name)

    def before_import_row(self, row, **kwargs):
        row["email"] = str(row.get("email") or "").strip().lower()
        row["phone"] = str(row.get("phone") or "").strip()
        data = JSONWidget().clean(row.get("data")) or {}  # an export's "data" column
        if not isinstance(data, dict):
            raise ValueError('the "data" column must hold a JSON object')
        data.update(
            (key, _cell(value))
            for key, value in row.items()
            if key and key not in self.KNOWN and key != "data" and value not in (None, "")
        )
        row["data"] = data

    def get_instance(self, instance_loader, row):
        if row.get("email"):
            return self.get_queryset().filter(email=row["email"]).first()
        if row.get("phone"):
            return self.get_queryset().filter(phone=row["phone"]).first()
        return None

    def import_instance(self, instance, row, **kwargs):
        super().import_instance(instance, row, **kwargs)
        instance.audience = self.audience
