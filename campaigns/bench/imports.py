"""import: a contact list of ``--import-rows`` rows (CSV) through the admin's own import
pages, as an operator does it: the upload with its preview (django-import-export's dry
run), then "Confirm import"; seconds each, the pages rendered included. Then a small file
with one bad row, "Skip rows with errors" ticked: is the row reported, and are the others
imported without it?
"""

from __future__ import annotations

import csv
import io
import time
from html.parser import HTMLParser

from django.conf import settings
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from campaigns.models import Audience, Contact

from .base import PREFIX, Bench, BenchError, bench_user

SCENARIO = "import"
SECONDS = 5
BAD_EMAIL = "not-an-email"
BAD_FILE_ROWS = 20


class ConfirmForm(HTMLParser):
    """The hidden fields of the preview page's "Confirm import" form, if it has one."""

    def __init__(self, action: str):
        super().__init__()
        self.action = action
        self.inside = False
        self.found = False
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("action") == self.action:
            self.inside = self.found = True
        elif tag == "input" and self.inside and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False


def contacts_csv(rows: int, *, bad_row: int | None = None) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["email", "name", "language", "tz", "plan", "city"])
    for number in range(rows):
        email = BAD_EMAIL if number == bad_row else f"c{number}@bench.example"
        writer.writerow([email, f"Reader {number}", "en", "Europe/Berlin", "pro", "Berlin"])
    return out.getvalue().encode()


def _host() -> str:
    """A host name the site answers to (the admin is reached through the full request
    path, ALLOWED_HOSTS included)."""
    for host in settings.ALLOWED_HOSTS:
        if host and host != "*" and not host.startswith("."):
            return host
    return "localhost"


class AdminImport:
    def __init__(self, client: Client):
        self.client = client
        self.import_url = reverse("admin:campaigns_contact_import")
        self.confirm_url = reverse("admin:campaigns_contact_process_import")
        formats = admin.site.get_model_admin(Contact).get_import_formats()
        (self.csv_format,) = [
            str(i) for i, f in enumerate(formats) if f().get_title().lower() == "csv"
        ]

    def open(self) -> None:
        """The import page, as the operator opens it before uploading (and so the timed
        requests do not pay for the first request's set-up)."""
        response = self.client.get(self.import_url)
        if response.status_code != 200:
            raise BenchError(f"the import page answered {response.status_code}")

    def preview(
        self, audience: Audience, content: bytes, *, skip_invalid: bool = False
    ) -> tuple[float, str, dict | None]:
        """Seconds, the page, and the confirm form's fields (None when it has none);
        ``skip_invalid`` ticks "Skip rows with errors"."""
        data = {
            "import_file": SimpleUploadedFile("contacts.csv", content, "text/csv"),
            "format": self.csv_format,
            "resource": "0",
            "audience": audience.pk,
        }
        if skip_invalid:
            data["skip_invalid"] = "on"
        started = time.perf_counter()
        response = self.client.post(self.import_url, data)
        seconds = time.perf_counter() - started
        page = response.content.decode()
        if response.status_code != 200:
            raise BenchError(f"the import page answered {response.status_code}")
        parser = ConfirmForm(self.confirm_url)
        parser.feed(page)
        return seconds, page, parser.fields if parser.found else None

    def confirm(self, fields: dict[str, str]) -> float:
        started = time.perf_counter()
        response = self.client.post(self.confirm_url, fields)
        seconds = time.perf_counter() - started
        if response.status_code != 302:
            raise BenchError(f"confirming the import answered {response.status_code}")
        return seconds


def run(bench: Bench) -> None:
    rows = bench.options.import_rows
    operator = bench_user(f"{PREFIX}admin", is_staff=True, is_superuser=True)
    client = Client(HTTP_HOST=_host(), secure=bool(getattr(settings, "SECURE_SSL_REDIRECT", 0)))
    client.force_login(operator)
    try:
        _run(bench, AdminImport(client), rows)
    finally:
        client.logout()  # its session row goes too


def _run(bench: Bench, pages: AdminImport, rows: int) -> None:
    pages.open()
    audience = Audience.objects.create(name=f"{PREFIX}import", kind="contacts")
    seconds, page, fields = pages.preview(audience, contacts_csv(rows))
    if fields is None:
        raise BenchError(f"the preview of a clean file offered no confirm:\n{page[:3000]}")
    if audience.contacts.exists():
        raise BenchError("the preview wrote contacts")
    bench.figure(
        SCENARIO,
        "preview",
        seconds,
        "s",
        f"import {rows} contacts (CSV): upload and preview",
        target=SECONDS,
        sense="max",
    )
    seconds = pages.confirm(fields)
    imported = audience.contacts.count()
    if imported != rows:
        raise BenchError(f"the import wrote {imported} of {rows} contacts")
    bench.figure(
        SCENARIO,
        "confirm",
        seconds,
        "s",
        f"import {rows} contacts (CSV): confirm",
        target=SECONDS,
        sense="max",
    )

    bad = Audience.objects.create(name=f"{PREFIX}import-bad", kind="contacts")
    # As an operator with such a file does: "Skip rows with errors" ticked.
    _, page, fields = pages.preview(
        bad, contacts_csv(BAD_FILE_ROWS, bad_row=BAD_FILE_ROWS // 2), skip_invalid=True
    )
    reported = BAD_EMAIL in page
    skipped = False
    if fields is not None:
        pages.confirm(fields)
        skipped = bad.contacts.count() == BAD_FILE_ROWS - 1
    bench.note(
        f"a file of {BAD_FILE_ROWS} rows with one bad email: "
        + ("reported" if reported else "not reported")
        + ", "
        + ("the other rows imported" if skipped else "nothing can be imported")
    )
    bench.figure(
        SCENARIO,
        "bad_row_reported",
        int(reported),
        "yes=1",
        "a bad row is reported in the preview",
        target=1,
        sense="min",
    )
    bench.figure(
        SCENARIO,
        "bad_row_skipped",
        int(skipped),
        "yes=1",
        "a bad row can be skipped, the others imported",
        target=1,
        sense="min",
    )
