"""Which backends exist: the built-ins under short keys, and any other by dotted path.

Nothing here reads the database or the settings: ``backend_class(path)`` only imports.
Declared channels (settings and ``notifications.py``) are ``channels.declarations``'.
"""

from __future__ import annotations

from functools import cache

from django.utils.module_loading import import_string

from .backends.base import BaseBackend

BUILTIN_BACKENDS = {
    "console": "channels.backends.console.ConsoleBackend",
    "email": "channels.backends.email.EmailBackend",
    "inbox": "channels.backends.inbox.InboxBackend",
    "locmem": "channels.backends.locmem.LocmemBackend",
    "null": "channels.backends.null.NullBackend",
    "webhook": "channels.backends.webhook.WebhookBackend",
    "sms.twilio": "channels.backends.sms.TwilioSmsBackend",
    "chat.telegram": "channels.backends.telegram.TelegramBackend",
    "chat.slack": "channels.backends.slack.SlackBackend",
    "push.expo": "channels.backends.expo.ExpoPushBackend",
    "push.onesignal": "channels.backends.onesignal.OneSignalBackend",
    "push.webpush": "channels.backends.webpush.WebPushBackend",
    "xmpp": "channels.backends.xmpp.XmppBackend",
    "social.x": "channels.backends.social_x.XBackend",
    "social.facebook": "channels.backends.social_facebook.FacebookPageBackend",
    "social.vk": "channels.backends.social_vk.VkWallBackend",
}


class UnknownBackend(LookupError):
    pass


def resolve_backend_path(path: str) -> str:
    """The dotted path of a built-in key; any other path as it is."""
    return BUILTIN_BACKENDS.get(path, path)


@cache
def backend_class(path: str) -> type[BaseBackend]:
    """The backend class at ``path`` (a built-in key or a dotted path); ``UnknownBackend``
    naming the path when it cannot be imported or is not a backend."""
    dotted = resolve_backend_path(path)
    try:
        cls = import_string(dotted)
    except ImportError as error:
        raise UnknownBackend(f"backend {path!r} cannot be imported: {error}") from error
    if not (isinstance(cls, type) and issubclass(cls, BaseBackend)):
        raise UnknownBackend(f"backend {path!r} is not a subclass of {BaseBackend.dotted_path()}")
    return cls
