"""Import and export (django-import-export) of opt-outs, events, templates, contacts and
channels, so operators can move them between a staging and a production site: an export
imported again gives back every field that means something (an event's and a channel's
availability windows too), and updates the rows it matches instead of adding copies. Rows refer
to users by username, to events and channels by key. A channel's secrets are exported masked,
and a masked secret imported keeps the one stored (or none, on a site that has none)."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json

from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from import_export import fields, resources, widgets
from import_export.results import RowResult

from campaigns.content.versions import (
    layout_version_for,
    template_versions,
    version_export,
    versions_import,
    versions_parse,
)
from campaigns.domain.untrusted_json import json_parse
from campaigns.domain.windows import Window
from campaigns.models import (
    AudienceKind,
    AvailabilityWindow,
    Contact,
    Event,
    Layout,
    OptOut,
    Template,
)
from channels.addresses import validate_phone
from channels.models import SECRET_MASK, ChannelConfig


class JSONWidget(widgets.Widget):
    def clean(self, value, row=None, **kwargs):
        if value in (None, ""):
            return []
        if isinstance(value, (list, dict)):
            return value
        return json_parse(value, what="the cell")  # InvalidJSON is a ValueError: a row error

    def render(self, value, obj=None, **kwargs):
        return json.dumps(value, ensure_ascii=False)


def _time_text(value: dt.time) -> str:
    return value.isoformat(timespec="minutes" if not value.second else "seconds")


class WindowsWidget(widgets.Widget):
    """Availability windows as JSON: ``[{"weekdays": [0, 1, 2, 3, 4], "start": "09:00",
    "end": "18:00"}]``; a window that is not valid is a row error naming it."""

    KEYS = ("weekdays", "start", "end")

    def clean(self, value, row=None, **kwargs):
        items = JSONWidget().clean(value)
        if not isinstance(items, list):
            raise ValueError('windows must be a JSON list like [{"weekdays": [0, 1], ...}]')
        windows = []
        for number, item in enumerate(items, start=1):
            if not isinstance(item, dict) or sorted(item) != sorted(self.KEYS):
                raise ValueError(f"window #{number} needs exactly: {', '.join(self.KEYS)}")
            try:
                window = Window(
                    item["weekdays"],
                    dt.time.fromisoformat(str(item["start"])),
                    dt.time.fromisoformat(str(item["end"])),
                )
            except ValueError as error:
                raise ValueError(f"window #{number}: {error}") from None
            windows.append(_window_row(window.weekdays, window.start, window.end))
        return sorted(windows, key=_window_order)

    def render(self, value, obj=None, **kwargs):
        return json.dumps(value or [], ensure_ascii=False)


def _window_row(weekdays, start: dt.time, end: dt.time) -> dict:
    return {"weekdays": sorted(weekdays), "start": _time_text(start), "end": _time_text(end)}


def _window_order(row: dict) -> tuple:
    return (row["start"], row["end"], row["weekdays"])


class WindowsField(fields.Field):
    """The windows of an event or a channel. Imported, they replace the row's windows once
    the row is saved (``WindowsResourceMixin``); a file without the column leaves them."""

    def __init__(self):
        super().__init__(attribute="windows", column_name="windows", widget=WindowsWidget())

    def get_value(self, instance):
        if hasattr(instance, "_imported_windows"):
            return instance._imported_windows
        if instance.pk is None:
            return []
        return sorted(
            (_window_row(w.weekdays, w.start_time, w.end_time) for w in instance.windows.all()),
            key=_window_order,
        )

    def save(self, instance, row, is_m2m=False, **kwargs):
        instance._imported_windows = self.clean(row, **kwargs)


class WindowsResourceMixin:
    """Writes the imported windows of a saved row; ``windows_owner`` names the window's
    foreign key to the row's model."""

    windows_owner = ""

    def after_save_instance(self, instance, row, **kwargs):
        super().after_save_instance(instance, row, **kwargs)
        windows = getattr(instance, "_imported_windows", None)
        if windows is None or instance.pk is None:  # no column, or a dry run not saved
            return
        if not self._is_using_transactions(kwargs) and self._is_dry_run(kwargs):
            return
        instance.windows.all().delete()
        AvailabilityWindow.objects.bulk_create(
            AvailabilityWindow(
                **{self.windows_owner: instance},
                weekdays=window["weekdays"],
                start_time=dt.time.fromisoformat(window["start"]),
                end_time=dt.time.fromisoformat(window["end"]),
            )
            for window in windows
        )


class LookupWidget(widgets.ForeignKeyWidget):
    """A foreign key by one of its fields (``field``: a ``key`` or a ``name``), with an error
    naming the missing value."""

    def clean(self, value, row=None, **kwargs):
        if value in (None, ""):
            return None
        try:
            return super().clean(value, row, **kwargs)
        except self.model.DoesNotExist:
            how = "named" if self.field == "name" else f"with {self.field}"
            raise ValueError(f"no {self.model._meta.verbose_name} {how} {value!r}") from None


class OptOutResource(resources.ModelResource):
    user = fields.Field(
        attribute="user",
        column_name="user",
        widget=widgets.ForeignKeyWidget(get_user_model(), field="username"),
    )
    channel = fields.Field(
        attribute="channel", column_name="channel", widget=LookupWidget(ChannelConfig, field="key")
    )
    event = fields.Field(
        attribute="event", column_name="event", widget=LookupWidget(Event, field="key")
    )

    class Meta:
        model = OptOut
        fields = (
            "user",
            "address",
            "channel",
            "kind",
            "event",
            "marketing",
            "reason",
            "source",
            "created_at",
        )
        # The scope is part of who refused what: a marketing-only opt-out and one of everything
        # for the same address are two rows.
        import_id_fields = ("user", "address", "channel", "kind", "event", "marketing")
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True

    def get_queryset(self):
        """The opt-outs in force: the revoked ones are the consent record, kept where they
        were made (the admin lists them), not moved between sites."""
        return super().get_queryset().filter(revoked_at__isnull=True)

    def before_import(self, dataset, **kwargs):
        if "marketing" not in dataset.headers:  # a file without it: not marketing-only
            dataset.append_col([False] * len(dataset), header="marketing")
        if "kind" not in dataset.headers:  # an older file: no kinds
            dataset.append_col([""] * len(dataset), header="kind")

    def before_import_row(self, row, **kwargs):
        # As OptOut.save() stores it, so a row matches the opt-out it was exported from.
        row["address"] = str(row.get("address") or "").strip().lower()
        if row["marketing"] in (None, ""):
            row["marketing"] = False
        row["kind"] = str(row.get("kind") or "").strip().lower()


class EventResource(WindowsResourceMixin, resources.ModelResource):
    variables = fields.Field(attribute="variables", column_name="variables", widget=JSONWidget())
    windows = WindowsField()
    windows_owner = "event"

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
            "mandatory_reason",
            "marketing",
            "unsubscribe_scope",
            "digest",
            "digest_at",
            "digest_choice",
            "expires_after",
            "windows",
        )
        import_id_fields = ("key",)
        clean_model_instances = True
        skip_unchanged = True


class VersionsField(fields.Field):
    """A template's published versions as JSON (content, number, note, when and by whom,
    layout version and partials). Imported, the versions the template lacks are added once
    the row is saved (same content, layout and partials: the same version); a file without
    the column leaves them."""

    def __init__(self):
        super().__init__(attribute="versions", column_name="versions", widget=JSONWidget())

    def get_value(self, instance):
        if hasattr(instance, "_imported_versions"):
            return instance._imported_versions
        if instance.pk is None:
            return []
        return [version_export(v) for v in template_versions(instance).order_by("number")]

    def save(self, instance, row, is_m2m=False, **kwargs):
        raw = self.clean(row, **kwargs)
        instance._versions_to_import = versions_parse(raw)  # a row error when it is wrong
        instance._imported_versions = raw


class PublishedField(fields.Field):
    """The number of the version that is published (empty: none)."""

    def __init__(self):
        super().__init__(attribute="published", column_name="published", widget=widgets.Widget())

    def get_value(self, instance):
        if hasattr(instance, "_imported_published"):
            return instance._imported_published
        return instance.published.number if instance.published_id else None

    def save(self, instance, row, is_m2m=False, **kwargs):
        value = row.get(self.column_name)
        if value in (None, ""):
            instance._imported_published = None
            return
        try:
            instance._imported_published = int(float(value))
        except (TypeError, ValueError):
            raise ValueError(f"published: {value!r} is not a version number") from None

    def export(self, instance, **kwargs):
        number = self.get_value(instance)
        return "" if number is None else str(number)


class TemplateResource(resources.ModelResource):
    event = fields.Field(
        attribute="event", column_name="event", widget=LookupWidget(Event, field="key")
    )
    channel = fields.Field(
        attribute="channel", column_name="channel", widget=LookupWidget(ChannelConfig, field="key")
    )
    layout = fields.Field(
        attribute="layout", column_name="layout", widget=LookupWidget(Layout, field="name")
    )
    published = PublishedField()
    versions = VersionsField()

    class Meta:
        model = Template
        fields = (
            "event",
            "channel",
            "language",
            "subject",
            "preheader",
            "text_body",
            "html_body",
            "link",
            "image",
            "json_body",
            "layout",
            "slug",
            "is_active",
            "published",
            "versions",
        )
        import_id_fields = ("event", "channel", "language")
        clean_model_instances = True  # a template that does not compile is a row error
        skip_unchanged = True

    def before_import_row(self, row, **kwargs):
        if "language" in row:  # as Template.clean() stores it, so the row finds its template
            row["language"] = str(row["language"] or "").strip().lower()
        name = str(row.get("layout") or "").strip()
        if name and not Layout.objects.filter(name=name).exists():
            # A layout this site lacks comes with the versions that were published with it.
            try:
                items = versions_parse(JSONWidget().clean(row.get("versions")) or [])
            except ValueError:
                return  # the row's error comes with its versions column
            channel = ChannelConfig.objects.filter(key=row.get("channel") or "").first()
            for item in reversed(items):
                if channel is not None and (item["layout"] or {}).get("name") == name:
                    layout_version_for(item["layout"], channel)
                    break

    def after_save_instance(self, instance, row, **kwargs):
        super().after_save_instance(instance, row, **kwargs)
        versions = getattr(instance, "_versions_to_import", None)
        if versions is None or instance.pk is None:  # no column, or a dry run not saved
            return
        if not self._is_using_transactions(kwargs) and self._is_dry_run(kwargs):
            return
        versions_import(
            template=instance,
            versions=versions,
            published=getattr(instance, "_imported_published", None),
        )


def _cell(value) -> str:
    """A spreadsheet cell as text (XLSX gives 42 as 42.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


PREVIEW_ROWS = 100  # rows a contact import's preview shows (a file may have 10,000)


class ContactResource(resources.ModelResource):
    """A contact list row: ``email``, ``phone``, ``name``, ``language``, ``tz`` (or
    ``timezone``); every other column is kept in ``data`` and reaches templates as
    ``{{ recipient.<column> }}``. Rows match existing contacts of the same list by email,
    else by phone, so importing a file again updates instead of doubling.

    Built for files of 10,000 rows: the list's contacts are read once (one query) and rows
    are matched and checked for uniqueness in memory, the file's own duplicates included;
    contacts are written with one INSERT (and one UPDATE) per 1,000 rows. With
    ``skip_invalid`` a row that is not valid is left out and reported in
    ``result.skipped_invalid`` (row number, field, message) instead of stopping the file."""

    KNOWN = ("email", "phone", "name", "language", "tz")
    data = fields.Field(attribute="data", column_name="data", widget=JSONWidget())

    def __init__(self, audience=None, skip_invalid=False, **kwargs):
        super().__init__(**kwargs)
        self.audience = audience
        self.skip_invalid = skip_invalid
        self.skipped_invalid: list[dict] = []
        self._previewed = 0
        self._import_fields = None
        self._by_email: dict[str, Contact] = {}
        self._by_phone: dict[str, Contact] = {}
        self._email_rows: dict[str, int] = {}
        self._phone_rows: dict[str, int] = {}
        self._matched_rows: dict[int, int] = {}
        self._match: Contact | None = None
        self._before: dict | None = None  # the matched contact's values before the row

    class Meta:
        model = Contact
        fields = ("email", "phone", "name", "language", "tz", "data")
        import_id_fields = ("email",)
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True
        use_bulk = True
        batch_size = 1000
        # No deep copy and HTML diff of every row (most of a big file's time): the values
        # before are kept by _contact_match, unchanged rows found by skip_row, and the diff
        # made for the rows the preview shows (after_import_row).
        skip_diff = True
        store_instance = True

    def get_queryset(self):
        return Contact.objects.filter(audience=self.audience)

    def get_import_fields(self):
        if self._import_fields is None:  # import-export orders them again on every call
            self._import_fields = super().get_import_fields()
        return self._import_fields

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
        for contact in self.get_queryset():  # the one read of the list
            if contact.email:
                self._by_email[contact.email] = contact
            if contact.phone:
                self._by_phone[contact.phone] = contact

    def before_import_row(self, row, **kwargs):
        row["email"] = str(row.get("email") or "").strip().lower()
        row["phone"] = str(row.get("phone") or "").strip()
        with contextlib.suppress(ValidationError):  # a bad number is the row's error, later
            row["phone"] = validate_phone(row["phone"]) if row["phone"] else ""
        try:
            data = JSONWidget().clean(row.get("data")) or {}  # an export's "data" column
        except ValueError as error:
            raise ValidationError({"data": str(error)}) from None
        if not isinstance(data, dict):
            raise ValidationError({"data": 'the "data" column must hold a JSON object'})
        data.update(
            (key, _cell(value))
            for key, value in row.items()
            if key and key not in self.KNOWN and key != "data" and value not in (None, "")
        )
        row["data"] = data
        self._match = self._contact_match(row, kwargs.get("row_number"))

    def _contact_match(self, row, number: int | None) -> Contact | None:
        """The list's contact this row updates (None: a new one), checked in memory against
        the list and the rows before it: each address once per list (the database's unique
        constraints, which ``full_clean`` then does not query)."""
        email, phone = row["email"], row["phone"]
        errors = {}
        if email and email in self._email_rows:
            errors["email"] = f"{email!r} is already on row {self._email_rows[email]} of the file"
        if phone and phone in self._phone_rows:
            errors["phone"] = f"{phone!r} is already on row {self._phone_rows[phone]} of the file"
        if email:
            self._email_rows.setdefault(email, number)
        if phone:
            self._phone_rows.setdefault(phone, number)
        if errors:
            raise ValidationError(errors)
        holder = self._by_phone.get(phone) if phone else None
        match = self._by_email.get(email) if email else holder
        if holder is not None and holder is not match:
            raise ValidationError(
                {"phone": f"{phone!r} is the phone of the list's contact {holder}"}
            )
        if match is not None:  # by email on one row, by phone on another
            earlier = self._matched_rows.setdefault(match.pk, number)
            if earlier != number:
                raise ValidationError(f"row {earlier} of the file already updates {match}")
        self._before = None if match is None else self._values(match)
        return match

    def _values(self, contact: Contact) -> dict:
        return {name: copy.deepcopy(getattr(contact, name)) for name in self._meta.fields}

    def get_instance(self, instance_loader, row):
        return self._match

    # The preview writes nothing: its rows were checked (full_clean, and uniqueness in
    # memory), and INSERTing 10,000 rows to roll them back would be a third of its time.
    def bulk_create(self, using_transactions, dry_run, raise_errors, **kwargs):
        if dry_run:
            self.create_instances.clear()
            return
        super().bulk_create(using_transactions, dry_run, raise_errors, **kwargs)

    def bulk_update(self, using_transactions, dry_run, raise_errors, **kwargs):
        if dry_run:
            self.update_instances.clear()
            return
        super().bulk_update(using_transactions, dry_run, raise_errors, **kwargs)

    def import_instance(self, instance, row, **kwargs):
        # import-export's loop (import_field, then Field.save) without its layers: six plain
        # columns, each a row error when its widget refuses it.
        errors = {}
        for field in self.get_import_fields():
            if field.column_name in row:
                try:
                    setattr(instance, field.attribute, field.clean(row, **kwargs))
                except ValueError as error:
                    errors[field.attribute] = ValidationError(str(error), code="invalid")
        if errors:
            raise ValidationError(errors)
        instance.audience = self.audience

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        """``full_clean`` without the queries: the list is the import's own (no foreign key
        check), and uniqueness was checked in memory (``_contact_match``)."""
        errors = dict(import_validation_errors or {})
        try:
            instance.full_clean(
                exclude=[*errors, "audience"], validate_unique=False, validate_constraints=False
            )
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def skip_row(self, instance, original, row, import_validation_errors=None):
        """An existing contact the row does not change (``skip_unchanged``, which
        import-export cannot judge without its diff)."""
        if import_validation_errors or self._before is None:
            return False
        return self._values(instance) == self._before

    def after_import_row(self, row, row_result, **kwargs):
        super().after_import_row(row, row_result, **kwargs)
        if self._previewed < PREVIEW_ROWS:  # the diff of the rows the preview shows
            self._previewed += 1
            new = self._before is None
            before = Contact(**({} if new else self._before))
            diff = self.get_diff_class()(self, before, new)
            diff.compare_with(self, row_result.instance)
            row_result.diff = diff.as_html()

    def import_row(self, row, instance_loader, **kwargs):
        row_result = super().import_row(row, instance_loader, **kwargs)
        if self.skip_invalid and row_result.validation_error is not None:
            self.skipped_invalid.extend(
                {
                    "number": kwargs["row_number"],
                    "field": field,
                    "value": _cell(row.get(field) or "") if field else "",
                    "message": message,
                }
                for field, messages in _error_items(row_result.validation_error)
                for message in messages
            )
            row_result.import_type = RowResult.IMPORT_TYPE_SKIP
            row_result.validation_error = None
            row_result.skipped_invalid = True
        return row_result

    def after_import(self, dataset, result, **kwargs):
        super().after_import(dataset, result, **kwargs)
        rows = [r for r in result.valid_rows() if not getattr(r, "skipped_invalid", False)]
        result.audience = self.audience
        result.skipped_invalid = self.skipped_invalid
        result.invalid_count = len({item["number"] for item in self.skipped_invalid})
        result.unchanged_count = result.totals[RowResult.IMPORT_TYPE_SKIP] - result.invalid_count
        result.preview_rows = [r for r in rows if r.diff]  # the first PREVIEW_ROWS
        result.preview_more = len(rows) - len(result.preview_rows)


def _error_items(error: ValidationError):
    """(field, messages) of a row's ValidationError; "" for the row as a whole."""
    if hasattr(error, "error_dict"):
        for field, messages in error.message_dict.items():
            yield ("" if field == NON_FIELD_ERRORS else field), messages
    else:
        yield "", error.messages


class ConfigField(fields.Field):
    """A channel's options as JSON. Exported, its secrets are masked; imported, a masked secret
    keeps the value stored (or is left out where none is), so an export never overwrites a
    real secret with the mask."""

    def __init__(self):
        super().__init__(attribute="config", column_name="config", widget=JSONWidget())

    def export(self, instance, **kwargs):
        return self.widget.render(instance.masked_config())

    def clean(self, row, **kwargs):
        value = super().clean(row, **kwargs)
        if value in (None, []):
            return {}
        if not isinstance(value, dict):
            raise ValueError('config must be a JSON object like {"host": "smtp.example.com"}')
        return value

    def save(self, instance, row, is_m2m=False, **kwargs):
        stored = instance.config or {}
        config = {}
        for name, value in self.clean(row, **kwargs).items():
            if value == SECRET_MASK:
                if not stored.get(name):
                    continue  # this site has no such secret: set it in the admin
                value = stored[name]
            config[name] = value
        instance.config = config


class ChannelConfigResource(WindowsResourceMixin, resources.ModelResource):
    config = ConfigField()
    windows = WindowsField()
    windows_owner = "channel"

    class Meta:
        model = ChannelConfig
        fields = (
            "key",
            "name",
            "backend",
            "config",
            "is_active",
            "max_attempts",
            "retry_delay",
            "retry_backoff",
            "rate_limit",
            "rate_burst",
            "windows",
        )
        import_id_fields = ("key",)
        clean_model_instances = True  # the backend validates the options: a row error
        skip_unchanged = True
        report_skipped = True
