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
