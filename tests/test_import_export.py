"""Import and export in the admin (django-import-export): preview and row errors before
anything is applied; templates move between sites by event and channel key."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import load_workbook

from campaigns.models import OptOut, Template
from campaigns.resources import TemplateResource

from . import factories

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
    from campaigns.models import Event
    from campaigns.resources import EventResource

    factories.EventFactory(key="invoice-due", description="", trigger="send_once")
    xlsx = EventResource().export().export("xlsx")
    Event.objects.filter(key="invoice-due").delete()
    import tablib

    result = EventResource().import_data(tablib.Dataset().load(xlsx, format="xlsx"))
    assert not result.has_errors() and not result.has_validation_errors()
    event = Event.objects.get(key="invoice-due")
    assert (event.trigger, event.variable_names) == ("send_once", ["order_id"])
