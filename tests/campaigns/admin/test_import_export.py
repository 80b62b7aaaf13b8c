"""Import and export in the admin (django-import-export): preview and row errors before
anything is applied; templates move between sites by event and channel key."""

from __future__ import annotations

import datetime as dt
import io
from html import unescape

import pytest
import tablib
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from openpyxl import load_workbook

from campaigns.admin.resources import ContactResource, TemplateResource
from campaigns.content.layouts import layout_publish
from campaigns.content.versions import template_publish
from campaigns.models import (
    Audience,
    AvailabilityWindow,
    Contact,
    Event,
    Layout,
    OptOut,
    Partial,
    Template,
)
from channels.models import SECRET_MASK, ChannelConfig
from tests import factories

CSV = "text/csv"


@pytest.fixture
def support(client, django_user_model, db):
    user = django_user_model.objects.create_user("sam", "sam@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Support"))
    client.force_login(user)
    return client


def upload(client, url: str, content: str, name: str = "data.csv"):
    data = {
        "import_file": SimpleUploadedFile(name, content.encode(), content_type=CSV),
        "format": "0",
        "resource": "0",
    }
    return client.post(url, data)


def test_an_opt_out_csv_with_a_bad_row_shows_the_error_and_applies_nothing(support, db):
    factories.EventFactory(key="newsletter")
    csv = (
        "user,address,channel,event,reason\n"
        ",one@example.com,,newsletter,asked by phone\n"
        ",two@example.com,,no-such-event,asked by mail\n"
    )
    response = upload(support, "/admin/campaigns/optout/import/", csv)
    html = response.content.decode()
    assert response.status_code == 200
    assert "no event with key &#x27;no-such-event&#x27;" in html
    assert OptOut.objects.count() == 0


def test_a_good_opt_out_csv_is_previewed_then_applied(support, db):
    factories.EventFactory(key="newsletter")
    csv = "user,address,channel,event,reason\n,One@Example.com,,newsletter,asked\n"
    response = upload(support, "/admin/campaigns/optout/import/", csv)
    html = response.content.decode()
    assert "one@example.com" in html.lower() and OptOut.objects.count() == 0  # a preview
    form = response.context["confirm_form"]
    response = support.post("/admin/campaigns/optout/process_import/", form.initial)
    assert response.status_code == 302
    (optout,) = OptOut.objects.all()
    assert (optout.address, optout.event.key) == ("one@example.com", "newsletter")


def test_templates_round_trip_between_sites_as_xlsx(db):
    channel = factories.memory_channel()
    event = factories.EventFactory(key="order-shipped")
    factories.TemplateFactory(event=event, channel=channel, language="de", subject="Hallo")
    xlsx = TemplateResource().export().export("xlsx")
    sheet = load_workbook(io.BytesIO(xlsx)).active
    rows = list(sheet.values)
    assert rows[0][:3] == ("event", "channel", "language")
    assert rows[1][:4] == ("order-shipped", "memory", "de", "Hallo")

    Template.objects.all().delete()  # "the other site"
    import tablib

    dataset = tablib.Dataset().load(xlsx, format="xlsx")
    result = TemplateResource().import_data(dataset, dry_run=False)
    assert not result.has_errors(), [e.error for e in result.base_errors] + [
        (r.errors[0].error if r.errors else None) for r in result.rows
    ]
    assert Template.objects.get().subject == "Hallo"


def test_a_template_that_does_not_compile_is_a_row_error(db):
    factories.memory_channel()
    factories.EventFactory(key="order-shipped")
    import tablib

    dataset = tablib.Dataset(
        ["order-shipped", "memory", "en", "ok", "{% if x %}", "", "", "1"],
        headers=[
            "event",
            "channel",
            "language",
            "subject",
            "text_body",
            "html_body",
            "slug",
            "is_active",
        ],
    )
    result = TemplateResource().import_data(dataset, dry_run=True)
    assert result.has_validation_errors()
    (invalid,) = result.invalid_rows
    assert "text_body" in str(invalid.error_dict)
    assert Template.objects.count() == 0


def test_marketing_cannot_import_opt_outs(client, django_user_model, db):
    user = django_user_model.objects.create_user("mia", "mia@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Marketing"))
    client.force_login(user)
    response = upload(client, "/admin/campaigns/optout/import/", "address\nx@example.com\n")
    assert response.status_code == 403
    assert OptOut.objects.count() == 0


def test_events_round_trip_as_xlsx(db):
    from campaigns.admin.resources import EventResource
    from campaigns.models import Event

    factories.EventFactory(
        key="invoice-due",
        description="",
        trigger="send_once",
        digest="daily",
        digest_at=dt.time(7, 30),
        digest_choice=True,
        expires_after=dt.timedelta(minutes=10),
    )
    xlsx = EventResource().export().export("xlsx")
    Event.objects.filter(key="invoice-due").delete()
    import tablib

    result = EventResource().import_data(tablib.Dataset().load(xlsx, format="xlsx"))
    assert not result.has_errors() and not result.has_validation_errors()
    event = Event.objects.get(key="invoice-due")
    assert (event.trigger, event.variable_names) == ("send_once", ["order_id"])
    assert (event.digest, event.digest_at, event.digest_choice, event.expires_after) == (
        "daily",
        dt.time(7, 30),
        True,
        dt.timedelta(minutes=10),
    )


# --- export -> import round trips through the admin's own views -------------------------------

#: Columns that are the row's identity in this database, not data that moves between sites.
LOCAL = {"id", "created_at", "updated_at", "version", "declared_in", "declared", "audience"}


def choice(form, name: str, label: str) -> str:
    """The value of a select's option by its label (formats are listed by position)."""
    (value,) = [v for v, text in form.fields[name].choices if str(text).lower() == label]
    return str(value)


def export_file(client, path: str, query: str = "") -> str:
    """What the admin's export view gives as a CSV file."""
    form = client.get(f"{path}export/{query}").context["form"]
    response = client.post(f"{path}export/{query}", {"format": choice(form, "format", "csv")})
    assert response.status_code == 200, response.content.decode()[:2000]
    assert response["Content-Type"].startswith("text/csv")
    return response.content.decode()


def import_file(client, path: str, content: str, **extra) -> str:
    """Upload ``content`` to the admin's import view, check its preview has no error, and
    confirm it; returns the message the admin gave."""
    form = client.get(f"{path}import/").context["form"]
    data = {
        "import_file": SimpleUploadedFile("data.csv", content.encode(), content_type=CSV),
        "format": choice(form, "format", "csv"),
        **extra,
    }
    preview = client.post(f"{path}import/", data)
    assert preview.status_code == 200
    result = preview.context.get("result")
    assert result is not None, preview.content.decode()[:3000]
    assert not result.has_errors() and not result.has_validation_errors(), (
        [(row.number, row.error_dict) for row in result.invalid_rows]
        + [str(e.error) for row in result.rows for e in row.errors]
        + [str(e.error) for e in result.base_errors]
    )
    done = client.post(
        f"{path}process_import/", preview.context["confirm_form"].initial, follow=True
    )
    assert done.status_code == 200
    return " ".join(str(m) for m in done.context["messages"])


def values(obj, *, skip=()) -> dict:
    """Every stored field of ``obj`` (foreign keys by their key), but its local identity."""
    row = {}
    for f in type(obj)._meta.concrete_fields:
        if f.name in LOCAL or f.name in skip:
            continue
        value = getattr(obj, f.name)
        if f.is_relation:  # by key, name, version number or username
            for name in ("key", "name", "number", "get_username"):
                if value is not None and hasattr(value, name):
                    value = getattr(value, name)
                    value = value() if callable(value) else value
                    break
        row[f.name] = value
    if isinstance(obj, (Event, ChannelConfig)):  # and their availability windows
        row["windows"] = sorted(
            (w.weekdays, w.start_time.isoformat(), w.end_time.isoformat())
            for w in obj.windows.all()
        )
    return row


def lines(exported: str) -> list[str]:
    """A CSV export's header, then its rows in any order."""
    header, *rows = exported.splitlines()
    return [header, *sorted(rows)]


def snapshot(queryset, **kwargs) -> list[dict]:
    return sorted((values(obj, **kwargs) for obj in queryset), key=repr)


def test_opt_outs_round_trip_with_their_scope_and_a_reimport_updates(admin_client, db):
    newsletter = factories.EventFactory(key="newsletter", marketing=True)
    sms = factories.memory_channel("sms")
    bob = factories.UserFactory(username="bob")
    OptOut.objects.create(address="ann@example.com", marketing=True, reason="footer link")
    OptOut.objects.create(address="ann@example.com", reason="asked by phone")  # everything
    OptOut.objects.create(user=bob, channel=sms, event=newsletter, reason="preferences")
    OptOut.objects.create(user=bob, channel=sms)
    before = snapshot(OptOut.objects.all())
    scopes = sorted(o.scope for o in OptOut.objects.all())
    path = "/admin/campaigns/optout/"

    exported = export_file(admin_client, path)
    OptOut.objects.all().delete()  # "the other site"
    import_file(admin_client, path, exported)

    assert snapshot(OptOut.objects.all()) == before
    assert sorted(o.scope for o in OptOut.objects.all()) == scopes
    assert OptOut.objects.get(reason="footer link").scope == OptOut.Scope.MARKETING
    assert lines(export_file(admin_client, path)) == lines(exported)

    # Imported again, with an edited reason and the address as a person types it: the rows
    # it matches are updated, none is added.
    edited = exported.replace("asked by phone", "asked by letter").replace(
        "ann@example.com", "Ann@Example.com"
    )
    import_file(admin_client, path, edited)
    assert OptOut.objects.count() == 4
    assert OptOut.objects.get(address="ann@example.com", marketing=False).reason == (
        "asked by letter"
    )
    assert OptOut.objects.get(address="ann@example.com", marketing=True).reason == "footer link"


def test_events_round_trip_with_their_windows_and_variables(admin_client, db):
    event = Event.objects.create(
        key="invoice-due",
        name="Invoice due",
        description="When an invoice falls due",
        variables=[
            {"name": "amount", "label": "Amount", "help": "With currency", "sample": "9 €"},
            {"name": "coupon", "label": "Coupon", "sample": "", "required": False},
        ],
        default_language="de",
        trigger="send_once",
        delete_after_processing=True,
        user_configurable=True,
        marketing=True,
        unsubscribe_scope="marketing",
    )
    AvailabilityWindow.objects.create(
        event=event, weekdays=[0, 1, 2, 3, 4], start_time=dt.time(9), end_time=dt.time(18)
    )
    AvailabilityWindow.objects.create(
        event=event, weekdays=[5], start_time=dt.time(22, 30), end_time=dt.time(2)
    )
    Event.objects.create(key="plain", name="Plain", is_active=False, mandatory=True)
    before = snapshot(Event.objects.all())
    path = "/admin/campaigns/event/"

    exported = export_file(admin_client, path)
    Event.objects.all().delete()
    assert AvailabilityWindow.objects.count() == 0
    import_file(admin_client, path, exported)

    assert snapshot(Event.objects.all()) == before
    assert lines(export_file(admin_client, path)) == lines(exported)

    # Imported again with one window changed: the event is updated, its windows replaced.
    edited = exported.replace('""end"": ""18:00""', '""end"": ""17:00""')
    assert edited != exported
    import_file(admin_client, path, edited)
    assert snapshot(Event.objects.exclude(key="invoice-due")) == [
        row for row in before if row["key"] != "invoice-due"
    ]
    assert sorted(
        AvailabilityWindow.objects.filter(event__key="invoice-due").values_list(
            "start_time", "end_time"
        )
    ) == [(dt.time(9), dt.time(17)), (dt.time(22, 30), dt.time(2))]
    assert AvailabilityWindow.objects.count() == 2


def test_an_event_with_a_bad_window_is_a_row_error_and_writes_nothing(admin_client, db):
    csv = (
        "key,name,windows\n"
        'ok-event,OK,"[{""weekdays"": [0], ""start"": ""09:00"", ""end"": ""10:00""}]"\n'
        'bad-event,Bad,"[{""weekdays"": [7], ""start"": ""09:00"", ""end"": ""10:00""}]"\n'
    )
    response = upload(admin_client, "/admin/campaigns/event/import/", csv)
    assert response.status_code == 200
    html = response.content.decode()
    assert "window #1: weekdays are numbers 0 (Monday) … 6 (Sunday); not: 7" in unescape(html)
    assert not Event.objects.filter(key__in=["ok-event", "bad-event"]).exists()
    assert AvailabilityWindow.objects.count() == 0


def test_templates_round_trip_and_a_reimport_updates(admin_client, db):
    mail = factories.memory_channel("mail")
    event = factories.EventFactory(key="order-shipped")
    Template.objects.create(
        event=event,
        channel=mail,
        language="pt-br",
        subject="Pedido {{ order_id }}",
        text_body="Olá {{ recipient.name }},\nseu pedido {{ order_id }} saiu.",
        html_body="<p>Pedido <b>{{ order_id }}</b></p>",
        slug="pedido",
        is_active=False,
    )
    factories.TemplateFactory(event=event, channel=mail, language="en")
    before = snapshot(Template.objects.all())
    path = "/admin/campaigns/template/"

    exported = export_file(admin_client, path)
    Template.objects.all().delete()
    import_file(admin_client, path, exported)
    assert snapshot(Template.objects.all()) == before

    # Edited in a spreadsheet (a new subject, the language as people write it) and imported
    # again: the template it matches is updated, none is added.
    edited = exported.replace("Pedido {{ order_id }}", "Pedido nº {{ order_id }}")
    import_file(admin_client, path, edited.replace(",pt-br,", ",PT-BR,"))
    assert Template.objects.count() == 2
    assert Template.objects.get(language="pt-br").subject == "Pedido nº {{ order_id }}"


def test_contacts_round_trip_into_their_list_and_a_reimport_updates(admin_client, db):
    customers = Audience.objects.create(name="Customers", kind="contacts")
    others = Audience.objects.create(name="Others", kind="contacts")
    Contact.objects.create(
        audience=customers,
        email="ann@example.com",
        phone="+4915100000001",
        name="Ann",
        language="de",
        tz="Europe/Berlin",
        data={"plan": "gold", "visits": 3, "tags": ["a", "b"]},
    )
    Contact.objects.create(audience=customers, phone="+4915100000002", name="Phone only")
    Contact.objects.create(audience=others, email="zoe@example.org")
    before = snapshot(Contact.objects.filter(audience=customers))
    path = "/admin/campaigns/contact/"

    exported = export_file(admin_client, path, f"?audience__id__exact={customers.pk}")
    assert "zoe@example.org" not in exported
    Contact.objects.filter(audience=customers).delete()
    import_file(admin_client, path, exported, audience=str(customers.pk))
    assert snapshot(Contact.objects.filter(audience=customers)) == before

    import_file(
        admin_client, path, exported.replace("Phone only", "Phone"), audience=str(customers.pk)
    )
    assert Contact.objects.filter(audience=customers).count() == 2
    assert Contact.objects.get(phone="+4915100000002").name == "Phone"
    assert Contact.objects.filter(audience=others).count() == 1


def test_channels_round_trip_and_a_masked_secret_keeps_the_real_one(admin_client, db):
    channel = factories.email_channel(port=2525)
    channel.config = {**channel.config, "username": "shop", "password": "s3cret-pw"}
    channel.max_attempts, channel.retry_delay, channel.retry_backoff = 3, 30, 2.5
    channel.rate_limit, channel.rate_burst = 5.0, 10
    channel.save()
    AvailabilityWindow.objects.create(
        channel=channel, weekdays=[0, 1, 2, 3, 4, 5, 6], start_time=dt.time(8), end_time=dt.time(20)
    )
    channels = ChannelConfig.objects.filter(key="email")
    before = snapshot(channels)
    path = "/admin/channels/channelconfig/"

    exported = export_file(admin_client, path)
    assert "s3cret-pw" not in exported and SECRET_MASK in exported
    preview = upload(admin_client, f"{path}import/", exported).content.decode()
    assert "s3cret-pw" not in preview and SECRET_MASK in preview

    # Imported again with a new name: the name changes, the stored password stays.
    import_file(admin_client, path, exported.replace(",Email,", ",Shop email,"))
    channel.refresh_from_db()
    assert channel.name == "Shop email"
    assert channel.config["password"] == "s3cret-pw"
    assert channels.count() == 1
    assert snapshot(channels, skip={"name"}) == [
        {k: v for k, v in before[0].items() if k != "name"}
    ]

    # On a site without the channel, everything but the secret arrives; the mask is not
    # stored as a password.
    channels.delete()
    import_file(admin_client, path, exported)
    (arrived,) = channels.all()
    assert "password" not in arrived.config
    expected = dict(before[0])
    expected["config"] = {k: v for k, v in expected["config"].items() if k != "password"}
    assert values(arrived) == expected


def test_templates_carry_their_versions_and_layouts_to_another_site(admin_client, db):
    mail = factories.memory_channel("mail")
    layout = Layout.objects.create(
        name="Brand", channel=mail, html_body="<div>{% block content %}{% endblock %}</div>"
    )
    layout_publish(layout=layout)
    Partial.objects.create(name="sig", body="— Shop")
    template = factories.TemplateFactory(
        channel=mail, subject="First", html_body="<p>1</p>", layout=layout
    )
    template.subject, template.text_body = "Second", 'Hi\n{% include "sig" %}'
    template.save()
    template_publish(template=template, note="friendlier")
    template.subject = "Draft, not published"
    template.save()

    def history():
        return [
            (v.number, v.subject, v.text_body, v.note, v.partials, str(v.layout_version))
            for v in Template.objects.get().versions.order_by("number")
        ]

    before, published = history(), Template.objects.get().published.number
    path = "/admin/campaigns/template/"
    exported = export_file(admin_client, path)
    Template.objects.all().delete()
    Layout.objects.all().delete()  # "the other site" has no such layout either
    import_file(admin_client, path, exported)

    imported = Template.objects.get()
    assert history() == before
    assert (imported.published.number, imported.subject) == (published, "Draft, not published")
    assert imported.published.partials == {"sig": "— Shop"}
    assert Layout.objects.get().published.html_body == layout.html_body
    import_file(admin_client, path, exported)  # again: nothing new
    assert history() == before


def test_an_imported_version_that_does_not_compile_is_a_row_error(db):
    factories.memory_channel()
    factories.EventFactory(key="order-shipped")
    import tablib

    versions = '[{"number": 1, "subject": "{% if %}"}]'
    dataset = tablib.Dataset(
        ["order-shipped", "memory", "en", "ok", "Hi", versions, "1"],
        headers=["event", "channel", "language", "subject", "text_body", "versions", "published"],
    )
    result = TemplateResource().import_data(dataset, dry_run=True)
    assert result.has_validation_errors() or result.has_errors()
    assert "v1 does not compile" in str(
        [r.error_dict for r in result.invalid_rows]
        + [e.error for r in result.rows for e in r.errors]
    )
    assert Template.objects.count() == 0


# Contact lists: files of thousands of rows, rows with errors named, and skipped on request.

CONTACTS = "/admin/campaigns/contact/"


def contacts_csv(rows: int, **bad: str) -> str:
    """A contact file of ``rows`` rows; ``bad`` replaces cells: ``email_2="x"`` puts x in
    row 2's email (rows counted from 1, as the import reports them)."""
    lines = ["email,phone,name,tz,plan"]
    for number in range(1, rows + 1):
        cells = {
            "email": f"p{number}@example.com",
            "phone": "",
            "name": f"Person {number}",
            "tz": "Europe/Berlin",
            "plan": "gold",
        }
        for key, value in bad.items():
            column, _, row = key.rpartition("_")
            if int(row) == number:
                cells[column] = value
        lines.append(",".join(cells.values()))
    return "\n".join(lines) + "\n"


def contacts_preview(client, audience, content: str, *, skip_invalid: bool = False):
    data = {
        "import_file": SimpleUploadedFile("contacts.csv", content.encode(), content_type=CSV),
        "format": "0",
        "resource": "0",
        "audience": str(audience.pk),
    }
    if skip_invalid:
        data["skip_invalid"] = "on"
    response = client.post(f"{CONTACTS}import/", data)
    assert response.status_code == 200
    return response


@pytest.fixture
def marketing(client, django_user_model, db):
    user = django_user_model.objects.create_user("mia", "mia@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Marketing"))
    client.force_login(user)
    return client


@pytest.fixture
def customers(db):
    return Audience.objects.create(name="Customers", kind="contacts")


def test_contact_rows_with_errors_are_named_with_their_problem_and_nothing_is_imported(
    marketing, customers
):
    content = contacts_csv(4, email_2="not-an-email", tz_4="Mars/Olympus")
    response = contacts_preview(marketing, customers, content)
    result = response.context["result"]
    assert [(row.number, sorted(row.error_dict)) for row in result.invalid_rows] == [
        (2, ["email"]),
        (4, ["tz"]),
    ]
    html = unescape(response.content.decode())
    assert "Enter a valid email address." in html
    assert "'Mars/Olympus' is not a known timezone" in html
    assert "confirm_form" not in response.context  # nothing can be imported
    assert not Contact.objects.exists()


def test_skipping_rows_with_errors_imports_the_others_and_lists_the_skipped(marketing, customers):
    content = contacts_csv(5, email_3="not-an-email")
    response = contacts_preview(marketing, customers, content, skip_invalid=True)
    result = response.context["result"]
    assert not result.has_validation_errors() and not result.has_errors()
    assert result.skipped_invalid == [
        {
            "number": 3,
            "field": "email",
            "value": "not-an-email",
            "message": "Enter a valid email address.",
        }
    ]
    html = response.content.decode()
    skipped = html[html.index('id="import-skipped"') :]
    assert "<td>3</td>" in skipped and "not-an-email" in skipped
    assert 'data-count="new">4<' in html and 'data-count="invalid">1<' in html
    assert not Contact.objects.exists()  # a preview

    form = response.context["confirm_form"]
    assert form.initial["skip_invalid"] is True  # the confirmation skips the same rows
    done = marketing.post(f"{CONTACTS}process_import/", form.initial, follow=True)
    message = " ".join(str(m) for m in done.context["messages"])
    assert "4 new, 0 updated, 0 unchanged, 1 skipped for errors" in message
    assert "Row 3 (email): Enter a valid email address." in message
    assert sorted(customers.contacts.values_list("email", flat=True)) == [
        "p1@example.com",
        "p2@example.com",
        "p4@example.com",
        "p5@example.com",
    ]
    # One entry in the list's history, not one per contact.
    (entry,) = LogEntry.objects.all()
    assert entry.object_id == str(customers.pk)
    assert entry.change_message == (
        "Imported contacts: 4 new, 0 updated, 0 unchanged, 1 skipped for errors."
    )


def test_duplicates_inside_the_file_and_against_the_list_are_reported(marketing, customers):
    Contact.objects.create(audience=customers, email="held@example.com", phone="+4915100000009")
    content = (
        "email,phone,name\n"
        "ann@example.com,+4915100000001,Ann\n"
        "bob@example.com,,Bob\n"
        "ANN@example.com,,Ann again\n"
        "cy@example.com,+49 151 00000001,Cy\n"
        "dee@example.com,+4915100000009,Dee\n"
    )
    response = contacts_preview(marketing, customers, content)
    errors = {row.number: row.error_dict for row in response.context["result"].invalid_rows}
    assert sorted(errors) == [3, 4, 5]
    assert errors[3]["email"] == ["'ann@example.com' is already on row 1 of the file"]
    assert errors[4]["phone"] == ["'+4915100000001' is already on row 1 of the file"]
    assert errors[5]["phone"] == [
        "'+4915100000009' is the phone of the list's contact held@example.com"
    ]
    # Skipped on request, the rest goes in and the database agrees (no unique violation).
    response = contacts_preview(marketing, customers, content, skip_invalid=True)
    assert [item["number"] for item in response.context["result"].skipped_invalid] == [3, 4, 5]
    form = response.context["confirm_form"]
    marketing.post(f"{CONTACTS}process_import/", form.initial)
    assert customers.contacts.count() == 3


def test_a_file_imported_again_updates_only_the_rows_that_changed(marketing, customers):
    content = contacts_csv(3)
    form = contacts_preview(marketing, customers, content).context["confirm_form"]
    marketing.post(f"{CONTACTS}process_import/", form.initial)
    response = contacts_preview(marketing, customers, content.replace("Person 2", "Person Two"))
    totals = response.context["result"].totals
    assert (totals["new"], totals["update"], totals["skip"]) == (0, 1, 2)
    form = response.context["confirm_form"]
    marketing.post(f"{CONTACTS}process_import/", form.initial)
    assert customers.contacts.get(email="p2@example.com").name == "Person Two"
    assert customers.contacts.get(email="p2@example.com").data == {"plan": "gold"}
    assert customers.contacts.count() == 3


def contact_import_queries(client, audience, rows: int) -> tuple[int, int]:
    """Queries of the preview and of the confirmation of a file of ``rows`` contacts."""
    content = contacts_csv(rows)
    with CaptureQueriesContext(connection) as preview:
        response = contacts_preview(client, audience, content)
    with CaptureQueriesContext(connection) as confirm:
        done = client.post(f"{CONTACTS}process_import/", response.context["confirm_form"].initial)
    assert done.status_code == 302
    assert audience.contacts.count() == rows
    return len(preview), len(confirm)


def test_a_contact_import_costs_the_same_queries_for_10_and_300_rows(marketing, db):
    small = Audience.objects.create(name="Small", kind="contacts")
    large = Audience.objects.create(name="Large", kind="contacts")
    contact_import_queries(marketing, small, 1)  # the session and permissions, read once
    ten = contact_import_queries(marketing, small, 10)
    assert ten == contact_import_queries(marketing, large, 300)
    # The request's own (session, user, permissions, the list chosen), the list's contacts
    # once, import-export's savepoints, and for the confirmation one INSERT of the rows
    # (the preview writes nothing) and the id sequence's setval(): none per row.
    assert ten == (15, 17)


def test_the_contact_import_reads_the_list_once_and_writes_a_thousand_rows_at_a_time(
    customers,
):
    Contact.objects.create(audience=customers, email="p1@example.com")
    dataset = tablib.Dataset().load(contacts_csv(2500), format="csv")
    resource = ContactResource(audience=customers)
    with CaptureQueriesContext(connection) as queries:
        result = resource.import_data(dataset, dry_run=False, use_transactions=True)
    assert (result.totals["new"], result.totals["update"]) == (2499, 1)
    statements = [q["sql"].split(None, 1)[0].upper() for q in queries]
    # The list once, 1,000 + 1,000 + 499 rows INSERTed, 1 UPDATE, the id sequence's setval();
    # the others are import-export's savepoints (one per step, not per row).
    assert [s for s in statements if s not in ("SAVEPOINT", "RELEASE")] == [
        "SELECT",
        "INSERT",
        "INSERT",
        "INSERT",
        "UPDATE",
        "SELECT",
    ]
    assert len(queries) == 18


def test_the_preview_of_a_big_file_shows_its_first_100_rows(marketing, customers):
    response = contacts_preview(marketing, customers, contacts_csv(250))
    result = response.context["result"]
    assert len(result.preview_rows) == 100
    html = response.content.decode()
    assert html.count('class="data-row new') == 100
    assert "p100@example.com" in html and "p101@example.com" not in html
    assert "150 more are not shown" in html
    assert 'data-count="new">250<' in html


def test_the_message_of_an_import_lists_ten_skipped_rows_and_counts_the_rest(marketing, customers):
    content = contacts_csv(14, **{f"email_{n}": f"bad{n}" for n in range(1, 13)})
    form = contacts_preview(marketing, customers, content, skip_invalid=True).context[
        "confirm_form"
    ]
    done = marketing.post(f"{CONTACTS}process_import/", form.initial, follow=True)
    (message,) = [str(m) for m in done.context["messages"]]
    assert message.startswith("Import finished: 2 new, 0 updated, 0 unchanged, 12 skipped")
    assert "Row 10 (email)" in message and "Row 11" not in message
    assert message.endswith("And 2 more.")
