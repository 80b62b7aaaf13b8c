"""Channels in the admin, in a real browser: adding and changing a channel of every built-in
backend, validation errors, secrets, permissions, and "Send test" when the provider fails."""

from __future__ import annotations

import base64
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from channels.models import SECRET_MASK, ChannelConfig
from channels.registry import BUILTIN_BACKENDS, backend_class
from tests import factories
from tests.conftest import free_port

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery"
ADD = "/admin/channels/channelconfig/add/"


def secret(name: str) -> str:
    """A secret value of its own per option, so the page can be searched for each."""
    return f"S3cret-{name.replace('_', '-')}-0123456789abcdef"


def vapid_raw_key() -> str:
    number = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    return base64.urlsafe_b64encode(number.to_bytes(32, "big")).rstrip(b"=").decode()


#: Per built-in backend: options that make a valid channel (as typed in the form), and wrong
#: values with the error the page must show (None: a wrong key instead).
BACKENDS: dict[str, tuple[dict[str, str], tuple[dict[str, str], str] | None]] = {
    "console": ({}, None),
    "inbox": ({}, None),
    "locmem": ({}, None),
    "null": ({}, None),
    "email": (
        {"host": "smtp.example.com", "port": "587", "username": "mailer", "password": ""},
        ({"use_tls": "on", "use_ssl": "on"}, "use_tls and use_ssl are mutually exclusive"),
    ),
    "webhook": (
        {"url": "https://hooks.example.com/notify", "secret": ""},
        ({"secret": "too-short"}, "at least 16 characters"),
    ),
    "sms.twilio": (
        {
            "account_sid": "AC" + "0123456789abcdef" * 2,
            "auth_token": "",
            "from_number": "+15005550006",
        },
        ({"account_sid": "AC123"}, "an Account SID: AC + 32 hex digits"),
    ),
    "chat.telegram": (
        {"bot_token": "123456:" + "A" * 35},
        ({"bot_token": "not-a-token"}, "a bot token from @BotFather"),
    ),
    "chat.slack": (
        {"bot_token": "xoxb-" + secret("bot_token")},
        ({"bot_token": "nonsense-token"}, "a Slack token: xoxb-"),
    ),
    "push.expo": ({"access_token": ""}, ({"ttl": "-5"}, "greater than or equal to 0")),
    "push.onesignal": (
        {"app_id": "5eb5a37e-b458-11e3-ac11-000c2940e62c", "api_key": ""},
        ({"app_id": "not-a-uuid"}, "Enter a valid UUID"),
    ),
    "push.webpush": (
        {"vapid_private_key": "", "vapid_subject": "mailto:ops@example.com"},
        ({"vapid_subject": "ops"}, "is neither a mailto: address nor an https: URL"),
    ),
    "xmpp": ({"jid": "bot@example.com", "password": ""}, ({"jid": "nobody"}, "user@domain")),
    "social.x": (
        {
            "api_key": "consumer-key",
            "api_secret": "",
            "access_token": "",
            "access_token_secret": "",
        },
        ({"max_length": "0"}, "greater than or equal to 1"),
    ),
    "social.facebook": (
        {"page_access_token": ""},
        ({"api_version": "24"}, "a Graph API version such as v24.0"),
    ),
    "social.vk": ({"access_token": ""}, ({"api_version": "x"}, "a VK API version such as 5.199")),
}


def test_every_builtin_backend_is_in_the_table():
    assert set(BACKENDS) == set(BUILTIN_BACKENDS)


@pytest.fixture
def superuser(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def marketing_user(transactional_db, django_user_model):
    mia = django_user_model.objects.create_user("mia", "mia@x.io", PASSWORD, is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    return mia


def test_send_test_to_an_smtp_server_that_refuses_says_so(page, marketing_user, admin_login):
    channel = factories.email_channel(port=free_port())  # nothing listens there
    admin_login(page, "mia", PASSWORD)
    page.goto(f"/admin/channels/channelconfig/{channel.pk}/change/")
    page.get_by_role("link", name="Send test").click()
    page.get_by_label("Address").fill("ops@example.com")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Send test").click()
    assert answer.value.status == 200
    expect(
        page.get_by_text("Test not sent: TransientError: SMTP connection to 127.0.0.1:")
    ).to_be_visible()
    expect(page.locator("body")).to_contain_text("Connection refused")
    expect(page.get_by_label("Address")).to_have_value("ops@example.com")  # try again


def typed_options(key: str) -> dict[str, str]:
    """The backend's valid options, each secret with a value of its own."""
    options, _ = BACKENDS[key]
    secrets = backend_class(key).secret_fields()
    filled = {}
    for name, value in options.items():
        if name in secrets and not value:
            value = vapid_raw_key() if name == "vapid_private_key" else secret(name)
        filled[name] = value
    return filled


def fill(page, options: dict[str, str]) -> None:
    for name, value in options.items():
        field = page.locator(f"[name=cfg__{name}]")
        if field.get_attribute("type") == "checkbox":
            field.check(force=True)  # unfold's switch hides the box behind its toggle
        else:
            field.fill(value)


def save(page):
    """Click Save; the HTTP status the POST got."""
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.locator("[name=_save]").click()
    page.wait_for_load_state()
    return answer.value.status


def assert_no_secret_shown(page, options: dict[str, str], secrets) -> None:
    html = page.content()
    for name in secrets:
        if options.get(name):
            assert options[name] not in html, f"{name} is echoed in the page"
        field = page.locator(f"[name=cfg__{name}]")
        expect(field).to_have_attribute("type", "password")
        expect(field).to_have_value("")


@pytest.mark.parametrize("key", sorted(BUILTIN_BACKENDS))
def test_a_superuser_adds_and_changes_a_channel_of_each_backend(page, superuser, admin_login, key):
    """One step: choosing the backend shows its options (secrets as password inputs); a
    wrong value comes back as an error on the page, never a 500 nor a secret; then the
    channel is saved with its options, and its change form keeps the secrets unseen."""
    cls = backend_class(key)
    secrets = cls.secret_fields()
    options = typed_options(key)
    admin_login(page, "root", PASSWORD)
    page.goto(ADD)
    expect(page.locator("[name^=cfg__]")).to_have_count(0)
    page.locator("[name=key]").fill("new-channel")
    page.locator("[name=name]").fill("New channel")
    page.locator("select[name=backend]").select_option(label=cls.verbose_name)
    expect(page.get_by_text(f"{cls.verbose_name} options", exact=True)).to_be_visible()
    expect(page.locator("[name^=cfg__]")).to_have_count(len(cls.ConfigForm.base_fields))
    expect(page.locator("[name=key]")).to_have_value("new-channel")  # kept across the reload
    for name in secrets:
        expect(page.locator(f"[name=cfg__{name}]")).to_have_attribute("type", "password")

    # A wrong value: the error on the page, nothing saved, no secret sent back.
    _, wrong = BACKENDS[key]
    fill(page, options)
    if wrong:
        wrong_values, error = wrong
        fill(page, wrong_values)
    else:
        wrong_values, error = {}, "Enter a valid “slug”"
        page.locator("[name=key]").fill("not a slug!")
    assert save(page) == 200
    expect(page.locator("#content")).to_contain_text(error)
    assert_no_secret_shown(page, {**options, **wrong_values}, secrets)
    assert not ChannelConfig.objects.filter(key="new-channel").exists()

    # Corrected (secrets typed again: they never come back), it is saved with its options.
    page.locator("[name=key]").fill("new-channel")
    for name in wrong_values:
        field = page.locator(f"[name=cfg__{name}]")
        if field.get_attribute("type") == "checkbox":
            field.uncheck(force=True)
        else:
            field.fill(options.get(name, ""))
    fill(page, {name: options[name] for name in secrets if name in options})
    assert save(page) == 302
    expect(page.locator("body")).to_contain_text("was added successfully")
    channel = ChannelConfig.objects.get(key="new-channel")
    assert channel.backend == BUILTIN_BACKENDS[key]
    backend = channel.get_backend()  # the backend takes the stored options, secrets included
    for name, value in options.items():
        assert str(channel.config[name]) == str(backend.options[name]) == value, name

    # The change form: options shown, secrets not; saving as is keeps them.
    page.goto(f"/admin/channels/channelconfig/{channel.pk}/change/")
    assert_no_secret_shown(page, options, secrets)
    for name in secrets:
        if options.get(name):
            expect(page.locator(f"[name=cfg__{name}]")).to_have_attribute(
                "placeholder", re.compile("stored")
            )
    for name, value in options.items():
        if name not in secrets:
            expect(page.locator(f"[name=cfg__{name}]")).to_have_value(value)
    assert save(page) == 302
    expect(page.locator("body")).to_contain_text("was changed successfully")
    stored = channel.config
    channel.refresh_from_db()
    assert channel.config == stored


def test_marketing_sees_channels_but_cannot_add_or_change_them(page, marketing_user, admin_login):
    channel = factories.ChannelFactory(
        key="sms",
        name="SMS",
        backend="channels.backends.sms.TwilioSmsBackend",
        config={
            "account_sid": "AC" + "0123456789abcdef" * 2,
            "auth_token": secret("auth_token"),
            "from_number": "+15005550006",
        },
    )
    admin_login(page, "mia", PASSWORD)
    page.goto("/admin/channels/channelconfig/")
    expect(page.locator("#result_list")).to_contain_text("sms")
    expect(page.get_by_role("link", name=re.compile("Add channel"))).to_have_count(0)
    response = page.goto(ADD)
    assert response.status == 403
    response = page.goto(f"/admin/channels/channelconfig/{channel.pk}/change/")
    assert response.status == 200
    assert secret("auth_token") not in page.content()
    expect(page.locator("#content")).to_contain_text(SECRET_MASK)
    expect(page.locator("[name^=cfg__]")).to_have_count(0)
    expect(page.locator("[name=_save]")).to_have_count(0)
