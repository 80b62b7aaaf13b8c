"""Channel secrets at rest: the database column never holds a secret in clear — after a save,
an admin edit, a declaration sync or the migration — while backends get them decrypted, and
admin pages, dumps and logs never show them."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from campaigns.models import Message, MessageStatus
from channels.declarations import sync_channels
from channels.models import ChannelConfig
from channels.secrets import SecretKeyError
from tests import factories
from tests.channels.backends.test_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.channels.conftest import channel_with_event, notify_and_dispatch
from tests.channels.fakes import FakeServer

TWILIO = "channels.backends.sms.TwilioSmsBackend"
KEY_A = "a2V5LWEtZm9yLXRlc3RzLW9mLWNoYW5uZWwtc2VjcmU="  # 32 bytes, base64url
KEY_B = "a2V5LWItZm9yLXRlc3RzLW9mLWNoYW5uZWwtc2VjcmU="


def raw_columns(key: str) -> str:
    """What PostgreSQL holds in ``config`` and ``declared``, as text."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT config::text || ' ' || declared::text FROM channels_channelconfig "
            "WHERE key = %s",
            [key],
        )
        return cursor.fetchone()[0]


SECRET_CONFIGS = {
    "channels.backends.email.EmailBackend": (
        {"host": "smtp.example.com", "username": "mailer", "password": "smtp-Pa55word-0001"},
        ["smtp-Pa55word-0001"],
    ),
    TWILIO: (
        {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": "+15005550006"},
        [AUTH_TOKEN],
    ),
    "channels.backends.social_x.XBackend": (
        {
            "api_key": "consumer-key-0001",
            "api_secret": "consumer-secret-0001",
            "access_token": "access-token-0001",
            "access_token_secret": "access-token-secret-0001",
        },
        ["consumer-secret-0001", "access-token-0001", "access-token-secret-0001"],
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("backend", sorted(SECRET_CONFIGS))
def test_the_column_holds_no_secret_in_clear(backend):
    config, secrets = SECRET_CONFIGS[backend]
    factories.ChannelFactory(key="chan", backend=backend, config=config)
    raw = raw_columns("chan")
    for secret in secrets:
        assert secret not in raw
    assert raw.count('"$fernet"') == len(secrets)
    with connection.cursor() as cursor:
        cursor.execute("SELECT config::text FROM channels_channelconfig WHERE key = 'chan'")
        stored = json.loads(cursor.fetchone()[0])
    for name, value in config.items():  # what is not secret stays readable
        if value not in secrets:
            assert stored[name] == value
    channel = ChannelConfig.objects.get(key="chan")
    assert channel.config == config  # read back in clear
    assert ChannelConfig.objects.values_list("config", flat=True).get(key="chan") == config
    assert channel.get_backend().options.items() >= config.items()


@pytest.mark.django_db
def test_a_send_authenticates_with_the_decrypted_token(caplog):
    """FakeTwilio answers 401 unless the basic auth carries the real Auth Token."""
    caplog.set_level(logging.DEBUG)
    with FakeServer(FakeTwilio()) as twilio:
        channel = channel_with_event(
            key="sms",
            backend="sms.twilio",
            config={
                "base_url": twilio.url,
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_number": "+15005550006",
                "track_delivery": "off",
            },
        )
        assert AUTH_TOKEN not in raw_columns("sms")
        (message,) = notify_and_dispatch(channel, {"phone": "+4915112345678", "name": "Ann"})
    assert (message.status, message.last_error) == (MessageStatus.SENT, "")
    assert message.provider_id.startswith("SM")
    assert len(twilio.requests) == 1
    assert AUTH_TOKEN not in caplog.text  # nor in the logs of the send


@pytest.mark.django_db
def test_an_admin_edit_stores_the_new_secret_encrypted(admin_client):
    channel = factories.ChannelFactory(
        key="smtp",
        backend="channels.backends.email.EmailBackend",
        config={"host": "smtp.example.com", "password": "old-Pa55word-0001"},
    )
    response = admin_client.post(
        f"/admin/channels/channelconfig/{channel.pk}/change/",
        {
            "key": "smtp",
            "name": "SMTP",
            "backend": channel.backend,
            "is_active": "on",
            "cfg__host": "smtp.example.com",
            "cfg__password": "new-Pa55word-0002",
            "windows-TOTAL_FORMS": "0",
            "windows-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    raw = raw_columns("smtp")
    assert "new-Pa55word-0002" not in raw and "old-Pa55word-0001" not in raw
    assert ChannelConfig.objects.get(key="smtp").config["password"] == "new-Pa55word-0002"
    html = admin_client.get(f"/admin/channels/channelconfig/{channel.pk}/change/").content
    assert b"Pa55word" not in html


@pytest.mark.django_db
def test_a_declaration_synced_from_settings_is_stored_encrypted(settings):
    options = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": "+15005550006"}
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "CHANNELS": {
            **settings.NOTIFIER["CHANNELS"],
            "sms": {"BACKEND": "sms.twilio", "NAME": "SMS", "OPTIONS": options},
        },
    }
    sync_channels()
    assert AUTH_TOKEN not in raw_columns("sms")  # neither in config nor in the declaration
    channel = ChannelConfig.objects.get(key="sms")
    assert channel.config == options and channel.declared["config"] == options

    # Unchanged in code, the declaration is recognised as such: an operator's edit stands.
    channel.name = "SMS (edited)"
    channel.save(update_fields=["name"])
    sync_channels()
    assert ChannelConfig.objects.get(key="sms").name == "SMS (edited)"
    assert AUTH_TOKEN not in raw_columns("sms")


@pytest.mark.django_db
def test_dumps_never_show_a_secret(capsys):
    config, _ = SECRET_CONFIGS[TWILIO]
    factories.ChannelFactory(key="sms", backend=TWILIO, config=config)
    call_command("dumpdata", "channels.channelconfig", indent=1)
    dumped = capsys.readouterr().out
    assert '"sms"' in dumped and "$fernet" in dumped
    assert AUTH_TOKEN not in dumped


@pytest.mark.django_db
def test_keys_rotate_without_losing_a_secret(settings):
    config, _ = SECRET_CONFIGS[TWILIO]
    settings.NOTIFIER_SECRET_KEYS = [KEY_A]
    factories.ChannelFactory(key="sms", backend=TWILIO, config=config)
    before = raw_columns("sms")

    settings.NOTIFIER_SECRET_KEYS = [KEY_B, KEY_A]  # the new key first, the old one kept
    assert ChannelConfig.objects.get(key="sms").config == config
    call_command("encrypt_channel_secrets", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert raw_columns("sms") != before

    settings.NOTIFIER_SECRET_KEYS = [KEY_B]  # the old one dropped
    assert ChannelConfig.objects.get(key="sms").config == config

    settings.NOTIFIER_SECRET_KEYS = [KEY_A]  # a key that never encrypted it
    with pytest.raises(SecretKeyError, match="NOTIFIER_SECRET_KEYS"):
        ChannelConfig.objects.get(key="sms")


@pytest.mark.django_db
def test_production_needs_keys_and_development_derives_one(settings):
    config, _ = SECRET_CONFIGS[TWILIO]
    settings.NOTIFIER_SECRET_KEYS = []
    settings.DEBUG = False
    assert "notifier.E011" in {error.id for error in run_checks()}
    with pytest.raises(SecretKeyError, match="NOTIFIER_SECRET_KEYS is not set"):
        factories.ChannelFactory(key="sms", backend=TWILIO, config=config)
    assert not ChannelConfig.objects.filter(key="sms").exists()

    settings.DEBUG = True  # development: a key derived from SECRET_KEY
    assert "notifier.E011" not in {error.id for error in run_checks()}
    factories.ChannelFactory(key="sms", backend=TWILIO, config=config)
    assert AUTH_TOKEN not in raw_columns("sms")
    assert ChannelConfig.objects.get(key="sms").config == config

    settings.NOTIFIER_SECRET_KEYS = ["not-a-fernet-key-but-a-password"]
    errors = [error for error in run_checks() if error.id == "notifier.E012"]
    assert len(errors) == 1 and "key #1 is not a Fernet key" in errors[0].msg
    assert "not-a-fernet-key" not in errors[0].msg + (errors[0].hint or "")


# --- the data migration ---------------------------------------------------------------------


def encrypt_migration(executor: MigrationExecutor) -> tuple[tuple[str, str], tuple[str, str]]:
    """The migration that encrypts stored secrets, and the one before it."""
    (node,) = [n for n in executor.loader.graph.nodes if n[0] == "channels" and "encrypt" in n[1]]
    (parent,) = [
        p.key for p in executor.loader.graph.node_map[node].parents if p.key[0] == "channels"
    ]
    return node, parent


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_stored_secrets_and_its_reverse_decrypts_them():
    executor = MigrationExecutor(connection)
    migration, before = encrypt_migration(executor)
    # Every app's latest migration: going back also unapplies the campaigns migrations that
    # depend on the channels migrations undone.
    leaves = executor.loader.graph.leaf_nodes()
    options = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": "+15005550006"}
    try:
        migrate(before)
        old = MigrationExecutor(connection).loader.project_state([before]).apps
        old.get_model("channels", "ChannelConfig").objects.create(
            key="sms-legacy",
            name="SMS",
            backend=TWILIO,
            config=options,
            declared={"backend": TWILIO, "config": options, "name": "SMS"},
        )
        assert raw_columns("sms-legacy").count(AUTH_TOKEN) == 2  # stored in clear, twice

        migrate(migration)
        assert AUTH_TOKEN not in raw_columns("sms-legacy")
        then = MigrationExecutor(connection).loader.project_state([migration]).apps
        channel = then.get_model("channels", "ChannelConfig").objects.get(key="sms-legacy")
        assert channel.config == options and channel.declared["config"] == options

        migrate(before)
        assert raw_columns("sms-legacy").count(AUTH_TOKEN) == 2
        with connection.cursor() as cursor:
            cursor.execute("SELECT config FROM channels_channelconfig WHERE key = 'sms-legacy'")
            (config,) = cursor.fetchone()
        assert (json.loads(config) if isinstance(config, str) else config) == options
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(leaves)
    assert MigrationExecutor(connection).migration_plan(leaves) == []  # all applied again
    assert AUTH_TOKEN not in raw_columns("sms-legacy")
    assert Message.objects.count() == 0
