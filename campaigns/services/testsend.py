"""Test sends of templates from the admin: render, then send through ``channels.testsend``."""

from __future__ import annotations

from channels.testsend import TestSendResult, test_send

from ..models import Template
from .preview import template_render_preview


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
