"""Test sends: one real message through a real channel, outside the outbox (the admin's
"Send test" of a channel, and of a template once the domain has rendered it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from .backends.base import ConfigurationError, DeliveryError
from .models import ChannelConfig
from .registry import UnknownBackend


@dataclass(frozen=True, slots=True)
class TestSendResult:
    ok: bool
    detail: str  # the provider's id when sent, else what went wrong, in the provider's words


def test_send(
    *,
    channel: ChannelConfig,
    address: str,
    subject: str,
    text: str,
    html: str = "",
    link: str = "",
    image: str = "",
    body: Any = None,
) -> TestSendResult:
    """Send ``subject`` / ``text`` / ``html`` (and a push's ``link`` and ``image``, a webhook's
    JSON ``body``) to ``address`` through ``channel``. Never raises for what the channel or the
    provider refuses: the result says it."""
    try:
        backend = channel.get_backend()
        backend.validate_address(address)
        provider_id = backend.send_test(
            address, subject=subject, text=text, html=html, link=link, image=image, body=body
        )
    except ValidationError as error:
        return TestSendResult(False, " ".join(error.messages))
    except (ConfigurationError, UnknownBackend) as error:
        return TestSendResult(False, f"the channel is misconfigured: {error}")
    except DeliveryError as error:
        return TestSendResult(False, f"{type(error).__name__}: {error}")
    return TestSendResult(True, provider_id or "accepted")


def channel_test_send(*, channel: ChannelConfig, address: str) -> TestSendResult:
    """A short fixed message naming the channel, sent to ``address``."""
    text = f"This is a test message from Notifier's channel {channel.name} ({channel.key})."
    return test_send(
        channel=channel,
        address=address,
        subject="[Test] Notifier",
        text=text,
        html=f"<p>{text}</p>",
    )
