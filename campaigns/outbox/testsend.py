"""Test sends from the admin: one real message through a real channel, outside the outbox."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from campaigns.domain.preview import template_render_preview
from campaigns.models import Template
from channels.backends.base import ConfigurationError, DeliveryError
from channels.models import ChannelConfig
from channels.registry import UnknownBackend


@dataclass(frozen=True, slots=True)
class TestSendResult:
    ok: bool
    detail: str  # the provider's id when sent, else what went wrong, in the provider's words


def test_send(
    *, channel: ChannelConfig, address: str, subject: str, text: str, html: str = ""
) -> TestSendResult:
    try:
        backend = channel.get_backend()
        backend.validate_address(address)
        provider_id = backend.send_test(address, subject=subject, text=text, html=html)
    except ValidationError as error:
        return TestSendResult(False, " ".join(error.messages))
    except (ConfigurationError, UnknownBackend) as error:
        return TestSendResult(False, f"the channel is misconfigured: {error}")
    except DeliveryError as error:
        return TestSendResult(False, f"{type(error).__name__}: {error}")
    return TestSendResult(True, provider_id or "accepted")


def template_test_send(
    *, template: Template, address: str, context: dict | None = None
) -> TestSendResult:
    """Render the template with ``context`` (default: its event's sample values) and send it
    to ``address``."""
    preview = template_render_preview(
        variables=template.event.variables,
        subject=template.subject,
        text_body=template.text_body,
        html_body=template.html_body,
        context=template.event.sample_context() if context is None else context,
    )
    if preview.errors:
        return TestSendResult(False, "the template does not render: " + "; ".join(preview.errors))
    return test_send(
        channel=template.channel,
        address=address,
        subject=f"[Test] {preview.subject}",
        text=preview.text,
        html=preview.html,
    )


def channel_test_send(*, channel: ChannelConfig, address: str) -> TestSendResult:
    text = f"This is a test message from Notifier's channel {channel.name} ({channel.key})."
    return test_send(
        channel=channel,
        address=address,
        subject="[Test] Notifier",
        text=text,
        html=f"<p>{text}</p>",
    )
