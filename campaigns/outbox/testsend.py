"""Test sends of templates from the admin: render, then send through ``channels.testsend``."""

from __future__ import annotations

from campaigns.domain.preview import template_render_preview
from campaigns.models import Template, TemplateVersion
from channels.testsend import TestSendResult, test_send


def template_test_send(
    *,
    template: Template,
    address: str,
    context: dict | None = None,
    version: TemplateVersion | None = None,
) -> TestSendResult:
    """Render the template's draft (or ``version``) with ``context`` (default: its event's
    sample values) and send it to ``address``."""
    preview = template_render_preview(
        variables=template.event.variables,
        sources=version.sources() if version is not None else template.sources(),
        context=template.event.sample_context() if context is None else context,
        fields=template.template_fields(),
    )
    if preview.errors:
        return TestSendResult(False, "the template does not render: " + "; ".join(preview.errors))
    return test_send(
        channel=template.channel,
        address=address,
        subject=f"[Test] {preview.subject}",
        text=preview.text,
        html=preview.html,
        link=preview.link,
        image=preview.image,
        body=preview.body_data,
    )
