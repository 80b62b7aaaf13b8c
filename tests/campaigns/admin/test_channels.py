"""The channel form: one field per backend option, validated by the backend; secrets are
write-only."""

from __future__ import annotations

import re

import pytest

from channels.models import ChannelConfig
from channels.registry import BUILTIN_BACKENDS, backend_class

EMAIL = "channels.backends.email.EmailBackend"


@pytest.fixture
def channel(db):
    return ChannelConfig.objects.create(
        key="smtp",
        name="SMTP",
        backend=EMAIL,
        config={"host": "mail.example.com", "port": 2525, "password": "S3cret-Value"},
    )


def post(client, channel, **options):
    data = {
        "key": channel.key,
        "name": channel.name,
        "backend": channel.backend,
        "is_active": "on",
        **{f"cfg__{k}": v for k, v in options.items()},
    }
    for prefix in ("windows",):
        data |= {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}
    return client.post(f"/admin/channels/channelconfig/{channel.pk}/change/", data)


def test_the_form_shows_each_option_and_never_the_secret(admin_client, channel):
    html = admin_client.get(f"/admin/channels/channelconfig/{channel.pk}/change/").content.decode()
    assert 'name="cfg__host"' in html and 'value="mail.example.com"' in html
    assert "From email" in html
    assert "Cfg " not in html  # labels name the option, not the form prefix
    assert 'name="cfg__password"' in html and 'type="password"' in html
    assert "S3cret-Value" not in html


def test_a_blank_secret_keeps_the_stored_value(admin_client, channel):
    response = post(admin_client, channel, host="smtp.example.com", port="587", password="")
    assert response.status_code == 302, response.content.decode()[-2000:]
    channel.refresh_from_db()
    assert channel.config == {"host": "smtp.example.com", "port": 587, "password": "S3cret-Value"}


def test_a_new_secret_replaces_the_stored_one(admin_client, channel):
    post(admin_client, channel, host="mail.example.com", password="n3w")
    channel.refresh_from_db()
    assert channel.config["password"] == "n3w"


def test_options_are_validated_by_the_backend(admin_client, channel):
    response = post(admin_client, channel, host="h", use_tls="on", use_ssl="on")
    assert response.status_code == 200
    assert "use_tls and use_ssl are mutually exclusive" in response.content.decode()
    response = post(admin_client, channel, host="h", port="eighty")
    assert "Enter a whole number" in response.content.decode()
    channel.refresh_from_db()
    assert channel.config["host"] == "mail.example.com"


def test_choosing_another_backend_shows_its_options(admin_client, db):
    response = admin_client.post(
        "/admin/channels/channelconfig/add/",
        {
            "key": "hooks",
            "name": "Hooks",
            "backend": "webhook",
            "is_active": "on",
            "windows-TOTAL_FORMS": "0",
            "windows-INITIAL_FORMS": "0",
        },
    )
    html = response.content.decode()
    assert response.status_code == 200  # not saved: the webhook needs its URL
    assert 'name="cfg__url"' in html
    assert not ChannelConfig.objects.filter(key="hooks").exists()


@pytest.mark.parametrize("key", sorted(BUILTIN_BACKENDS))
def test_every_builtin_backend_shows_its_form(admin_client, db, key):
    """Choosing a backend shows one field per option of its config form; secrets are
    password inputs that show nothing back."""
    response = admin_client.post(
        "/admin/channels/channelconfig/add/",
        {
            "key": "",
            "name": "",
            "backend": key,
            "windows-TOTAL_FORMS": "0",
            "windows-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    cls = backend_class(key)
    for name in cls.ConfigForm.base_fields:
        assert f'name="cfg__{name}"' in html, name
    for name in cls.secret_fields():
        field = re.search(rf'<input[^>]*name="cfg__{name}"[^>]*>', html).group(0)
        assert 'type="password"' in field and "value=" not in field.replace('value=""', "")


# --- adding a channel: backend and options in one step --------------------------------------

TWILIO = "channels.backends.sms.TwilioSmsBackend"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2


def add(client, backend, **options):
    return client.post(
        "/admin/channels/channelconfig/add/",
        {
            "key": "sms",
            "name": "SMS",
            "backend": backend,
            "is_active": "on",
            "windows-TOTAL_FORMS": "0",
            "windows-INITIAL_FORMS": "0",
            **{f"cfg__{k}": v for k, v in options.items()},
        },
    )


def field_errors(html: str, option: str) -> str:
    """The error list rendered with the option's field (unfold puts it right after it)."""
    start = html.index(f'name="cfg__{option}"')
    return html[start : start + 3000]


@pytest.mark.parametrize("backend", [TWILIO, "sms.twilio"])
def test_adding_an_sms_channel_without_credentials_shows_the_errors(admin_client, db, backend):
    response = add(admin_client, backend)
    assert response.status_code == 200  # was a 500: 'ChannelConfigForm' has no field 'config'
    html = response.content.decode()
    assert "This field is required" in field_errors(html, "account_sid")
    assert "This field is required" in field_errors(html, "auth_token")
    assert "set from_number or messaging_service_sid" in html
    assert not ChannelConfig.objects.filter(key="sms").exists()

    response = add(admin_client, backend, account_sid="AC12", auth_token="tok-en-1234567890")
    html = response.content.decode()
    assert response.status_code == 200
    assert "an Account SID: AC + 32 hex digits" in field_errors(html, "account_sid")
    assert "tok-en-1234567890" not in html  # a secret is never sent back
    assert not ChannelConfig.objects.filter(key="sms").exists()


def test_a_channel_is_created_with_its_options_in_one_post(admin_client, db):
    response = add(
        admin_client,
        TWILIO,
        account_sid=ACCOUNT_SID,
        auth_token="tok-en-1234567890",
        from_number="+15005550006",
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    channel = ChannelConfig.objects.get(key="sms")
    assert (channel.backend, channel.is_active) == (TWILIO, True)
    assert channel.config == {
        "account_sid": ACCOUNT_SID,
        "auth_token": "tok-en-1234567890",
        "from_number": "+15005550006",
    }


def test_choosing_a_backend_reloads_the_add_form_with_its_options(admin_client, db):
    html = admin_client.get("/admin/channels/channelconfig/add/").content.decode()
    assert 'name="cfg__' not in html and "Choose a backend" in html
    select = re.search(r'<select[^>]*name="backend"[^>]*>', html).group(0)
    assert 'hx-get="/admin/channels/channelconfig/add/"' in select
    assert 'hx-include="[name=key], [name=name]"' in select  # never a secret

    response = admin_client.get(
        "/admin/channels/channelconfig/add/", {"backend": "sms.twilio", "key": "sms"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "SMS (Twilio) options" in html
    for name in backend_class(TWILIO).ConfigForm.base_fields:
        assert f'name="cfg__{name}"' in html
    assert re.search(r'<option value="channels.backends.sms.TwilioSmsBackend"[^>]*selected', html)
    assert re.search(r'<input[^>]*name="key"[^>]*value="sms"', html)


def test_another_backends_secret_never_carries_over(admin_client, channel):
    """An email channel switched to XMPP: the stored SMTP password is not the XMPP one."""
    response = admin_client.post(
        f"/admin/channels/channelconfig/{channel.pk}/change/",
        {
            "key": channel.key,
            "name": channel.name,
            "backend": "channels.backends.xmpp.XmppBackend",
            "is_active": "on",
            "cfg__jid": "bot@example.com",
            "windows-TOTAL_FORMS": "0",
            "windows-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "This field is required" in field_errors(response.content.decode(), "password")
    channel.refresh_from_db()
    assert channel.backend == EMAIL and channel.config["password"] == "S3cret-Value"
