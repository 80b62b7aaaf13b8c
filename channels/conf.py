"""Typed access to the channels' own settings, and the one declaration of their options.

The options the transport layer reads live under ``settings.NOTIFIER`` like all of
Notifier's, each declared here once as an ``Option`` on ``ChannelSettings`` (name, type,
default, doc); ``channel_settings.<NAME>`` reads it when it is needed, so
``override_settings(NOTIFIER=...)`` takes effect at once. The domain declares its own
options with the same ``Option`` and reads both lists from the environment
(``NOTIFIER_<NAME>``). Nothing else under ``channels/`` reads ``settings.NOTIFIER``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings

ENV_PREFIX = "NOTIFIER_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class Option:
    """One ``NOTIFIER`` option: its type (int, float, bool, str, or dict for structures),
    default and meaning. Read on a settings instance (``channel_settings``, the domain's
    ``app_settings``), it gives the current value."""

    def __init__(self, type_: type, default: Any, doc: str):
        self.type = type_
        self.default = default
        self.doc = doc
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return self.coerce(getattr(settings, "NOTIFIER", {}).get(self.name, self.default))

    def coerce(self, value: Any) -> Any:
        """A value from Python settings, in this option's type."""
        if self.type is dict:
            return value
        if self.type is str:
            return "" if value is None else str(value)
        return self.type(value)

    @property
    def env_name(self) -> str:
        return f"{ENV_PREFIX}{self.name}"

    def parse(self, text: str) -> Any:
        """A value from the environment, in this option's type; ValueError says why not."""
        if self.type is bool:
            word = text.strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
            raise ValueError(f"expected one of {', '.join(sorted(_TRUE | (_FALSE - {''})))}")
        if self.type is int:
            try:
                return int(text.strip())
            except ValueError:
                raise ValueError("expected a whole number") from None
        if self.type is float:
            try:
                value = float(text.strip())
            except ValueError:
                raise ValueError("expected a number") from None
            if not math.isfinite(value):
                raise ValueError("expected a finite number")
            return value
        if self.type is dict:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"expected a JSON object ({error})") from None
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return value
        return text


class ChannelSettings:
    CHANNELS = Option(
        dict,
        {},
        'Channels declared in code: ``{key: {"BACKEND": path, "NAME": str, "OPTIONS": {}}}``.',
    )
    EMAIL_DOMAIN = Option(
        str, "notifier.local", "Domain of the ``Message-ID`` header of emails (``<uuid@domain>``)."
    )
    UNSUBSCRIBE_MAILTO = Option(
        str, "", "An address for ``List-Unsubscribe``'s mailto (none when empty)."
    )


#: Every channels option, in declaration order.
OPTIONS: tuple[Option, ...] = tuple(
    value for value in vars(ChannelSettings).values() if isinstance(value, Option)
)

channel_settings = ChannelSettings()


def site_url() -> str:
    """``settings.SITE_URL``, the site's public root, without a trailing slash ("" when the
    site has none): where providers post their callbacks."""
    return (getattr(settings, "SITE_URL", "") or "").rstrip("/")
