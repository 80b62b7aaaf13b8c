"""Import and export (django-import-export) of opt-outs, events and templates, so operators
can move templates between a staging and a production site. Rows refer to events and
channels by key; channel configurations (and their secrets) are never exported."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from import_export import fields, resources, widgets

from channels.models import ChannelConfig

from .models import Event, OptOut, Template


class JSONWidget(widgets.Widget):
    def clean(self, value, row=None, **kwargs):
        if value in (None, ""):
            return []
        if isinstance(value, (list, dict)):
            return value
        try:
            return json.loads(value)
        except ValueError as error:
            raise ValueError(f"not valid JSON: {error}") from None

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
