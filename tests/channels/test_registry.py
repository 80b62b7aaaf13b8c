"""The provider backends as the rest of Notifier sees them: registered under short keys,
listed for operators, their secrets masked, their options checked by ``manage.py check``."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks

from channels.backends.base import BaseBackend
from channels.backends.http import HttpBackend
from channels.declarations import known_backends
from channels.models import SECRET_MASK, ChannelConfig
from channels.registry import BUILTIN_BACKENDS, backend_class

PROVIDERS = {
    "webhook": ("user_id", ("secret",)),
    "sms.twilio": ("phone", ("auth_token",)),
    "chat.telegram": ("chat_id", ("bot_token",)),
    "chat.slack": ("slack_id", ("webhook_url", "bot_token")),
    "push.expo": ("push_token", ("access_token",)),
    "push.onesignal": ("user_id", ("api_key",)),
}


@pytest.mark.parametrize("key", PROVIDERS)
def test_registered_under_a_short_key(key):
    cls = backend_class(key)
    address_key, secrets = PROVIDERS[key]
    assert BUILTIN_BACKENDS[key] == cls.dotted_path()
    assert issubclass(cls, HttpBackend) and cls.key == key
    assert cls.address_key == address_key
    assert cls.secret_fields() == secrets
    assert key == "webhook" or cls.default_base_url.startswith("https://")
    assert known_backends()[cls.dotted_path()] == cls.verbose_name


def test_secrets_are_masked_in_a_channel_config(db):
    channel = ChannelConfig.objects.create(
        key="tg",
        name="Telegram",
        backend="chat.telegram",
        config={"bot_token": "123456:" + "A" * 35, "parse_mode": "HTML"},
    )
    channel.full_clean()
    assert channel.backend == "channels.backends.telegram.TelegramBackend"
    assert channel.masked_config() == {"bot_token": SECRET_MASK, "parse_mode": "HTML"}


def test_manage_py_check_names_a_bad_provider_option(settings):
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "CHANNELS": {
            "sms": {
                "BACKEND": "sms.twilio",
                "OPTIONS": {"account_sid": "AC1", "auth_token": "t", "from_number": "+1555"},
            }
        },
    }
    (error,) = [e for e in run_checks() if e.id == "notifier.E003"]
    assert "NOTIFIER['CHANNELS']['sms']['OPTIONS']" in error.msg
    assert "account_sid: an Account SID: AC + 32 hex digits" in error.msg


# --- capabilities are class flags ---------------------------------------------------------------

#: key: (category, stores_messages, reaches_people, unsubscribe_headers, browser_subscriptions,
#: status_callbacks, polls_receipts)
FLAGS = {
    "console": ("other", False, True, False, False, "", False),
    "email": ("email", False, True, True, False, "", False),
    "inbox": ("inbox", True, True, False, False, "", False),
    "locmem": ("other", False, True, False, False, "", False),
    "null": ("other", False, True, False, False, "", False),
    "webhook": ("webhook", False, True, False, False, "", False),
    "sms.twilio": ("sms", False, True, False, False, "twilio", False),
    "chat.telegram": ("chat", False, True, False, False, "", False),
    "chat.slack": ("chat", False, True, False, False, "", False),
    "push.expo": ("push", False, True, False, False, "", True),
    "push.onesignal": ("push", False, True, False, False, "", False),
    "push.webpush": ("push", False, True, False, True, "", False),
    "xmpp": ("chat", False, True, False, False, "", False),
    "social.x": ("social", False, False, False, False, "", False),
    "social.facebook": ("social", False, False, False, False, "", False),
    "social.vk": ("social", False, False, False, False, "", False),
}


def test_every_builtin_declares_its_capabilities_as_flags():
    assert set(FLAGS) == set(BUILTIN_BACKENDS)
    for key, expected in FLAGS.items():
        cls = backend_class(key)
        flags = (
            cls.category,
            cls.stores_messages,
            cls.reaches_people,
            cls.unsubscribe_headers,
            cls.browser_subscriptions,
            cls.status_callbacks,
            cls.polls_receipts,
        )
        assert flags == expected, key


def test_a_backend_with_an_unknown_category_is_refused_by_name():
    with pytest.raises(TypeError, match=r"Pager\.category is 'pager': not one of email, sms"):
        type("Pager", (BaseBackend,), {"category": "pager"})
