"""Test sends of templates from the admin: render, then send through ``channels.testsend``."""

from __future__ import annotations

from campaigns.domain.preview import template_render_preview
from campaigns.models import Template
from channels.testsend import TestSendResult, test_send


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
