"""Channels and events declared in code: synced into the database, checked at start-up."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.core.management import call_command

from campaigns.models import Event
from campaigns.registry import sync_all
from channels.backends.base import ConfigurationError
from channels.backends.email import EmailBackend
from channels.models import ChannelConfig


def test_declarations_are_synced_after_migrate(db):
    # From settings.NOTIFIER and from tests/notify_app/notifications.py (autodiscovered).
    email = ChannelConfig.objects.get(key="email")
    assert email.backend == "channels.backends.email.EmailBackend"
    assert email.declared_in == "settings.NOTIFIER['CHANNELS']"
    memory = ChannelConfig.objects.get(key="memory")
    assert (memory.backend, memory.declared_in) == (
        "channels.backends.locmem.LocmemBackend",
        "tests.notify_app.notifications",
    )
    event = Event.objects.get(key="password-reset")
    assert event.variable_names == ["reset_url"]
    assert event.variables[0]["sample"] == "https://example.com/r/abc"


def test_sync_keeps_admin_edits_until_the_declaration_changes(db, settings):
    email = ChannelConfig.objects.get(key="email")
    email.name = "Transactional email"
    email.config = {"mailer": "default", "from_email": "shop@example.com"}
    email.save()
    sync_all()
    email.refresh_from_db()
    assert email.name == "Transactional email"  # an operator's edit survives migrate

    channels = dict(settings.NOTIFIER["CHANNELS"])
    channels["email"] = {**channels["email"], "NAME": "Email (v2)"}
    settings.NOTIFIER = {**settings.NOTIFIER, "CHANNELS": channels}
    sync_all()
    email.refresh_from_db()
    assert email.name == "Email (v2)"  # the code changed: its declaration wins


def test_sync_command_creates_missing_rows(db, settings):
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "EVENTS": {"invoice-due": {"name": "Invoice due", "variables": ["amount", "due_on"]}},
    }
    call_command("sync_notifications", stdout=open("/dev/null", "w"))  # noqa: SIM115
    event = Event.objects.get(key="invoice-due")
    assert event.variable_names == ["amount", "due_on"]
    assert event.declared_in == "settings.NOTIFIER['EVENTS']"


def test_rows_created_in_the_admin_work_too(db):
    ChannelConfig.objects.create(key="ops", name="Ops", backend="console")
    assert ChannelConfig.objects.get(key="ops").get_backend().recipient_key() == "email"


def _errors(settings, channels):
    settings.NOTIFIER = {**settings.NOTIFIER, "CHANNELS": channels}
    return [(e.id, e.msg) for e in run_checks(tags=["notifier"])]


def test_check_names_an_unknown_backend(settings):
    errors = _errors(settings, {"sms": {"BACKEND": "myproject.sms.Nope"}})
    assert [code for code, _ in errors] == ["notifier.E002"]
    assert "NOTIFIER['CHANNELS']['sms']['BACKEND']" in errors[0][1]
    assert "'myproject.sms.Nope' cannot be imported" in errors[0][1]


def test_check_names_unknown_options(settings):
    errors = _errors(settings, {"email": {"BACKEND": "email", "OPTIONS": {"hots": "x"}}})
    assert [code for code, _ in errors] == ["notifier.E003"]
    assert "NOTIFIER['CHANNELS']['email']['OPTIONS']" in errors[0][1]
    assert "unknown option(s) 'hots'" in errors[0][1]
    assert "known options:" in errors[0][1] and "host" in errors[0][1]


def test_check_names_invalid_options_and_missing_backend(settings):
    errors = _errors(
        settings,
        {"email": {"BACKEND": "email", "OPTIONS": {"port": "eighty"}}, "bare": {}},
    )
    assert sorted(code for code, _ in errors) == ["notifier.E001", "notifier.E003"]
    assert any("port: Enter a whole number." in message for _, message in errors)


def test_check_passes_for_the_shipped_settings(settings):
    assert [e for e in run_checks(tags=["notifier"])] == []


def test_backend_options_are_validated_by_its_form():
    with pytest.raises(ConfigurationError, match="use_tls and use_ssl are mutually exclusive"):
        EmailBackend(channel_key="x", options={"host": "h", "use_tls": True, "use_ssl": True})
    with pytest.raises(ConfigurationError, match=r"no mailer 'bulk' in settings\.MAILERS"):
        EmailBackend(channel_key="x", options={"mailer": "bulk"})
