"""A campaign's test send: the campaign rendered with its values, sent to typed addresses on
every campaign channel that takes them, outside the outbox."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError

from campaigns.broadcast.planning import campaign_channels, campaign_versions
from campaigns.domain.context import language_candidates
from campaigns.models import Campaign, Template
from campaigns.outbox.testsend import TestSendResult, template_test_send
from channels.backends.base import ConfigurationError


def campaign_test_send(
    campaign: Campaign, addresses: Iterable[str]
) -> list[tuple[str, str, TestSendResult]]:
    """Send the campaign, rendered with its context (sample values fill the rest), to each
    typed address on every campaign channel that takes it. Returns (channel, address,
    result) rows; an address no channel takes is one row naming that."""
    channels = campaign_channels(campaign)
    event = campaign.event
    context = {**event.sample_context(), **(campaign.context or {})}
    templates = {
        (t.channel_id, t.language): t
        for t in Template.objects.filter(
            event=event, channel__in=channels, is_active=True, published__isnull=False
        ).select_related("event", "channel", "published__layout_version")
    }
    pinned = campaign_versions(campaign)
    rows: list[tuple[str, str, TestSendResult]] = []
    for address in dict.fromkeys(a.strip() for a in addresses if a.strip()):
        taken = False
        for channel in channels:
            try:
                channel.get_backend().validate_address(address)
            except ValidationError:  # not an address for this channel
                continue
            except ConfigurationError as error:
                taken = True
                rows.append(
                    (channel.key, address, TestSendResult(False, f"misconfigured: {error}"))
                )
                continue
            taken = True
            template = next(
                (
                    templates[(channel.pk, lang)]
                    for lang in language_candidates(None, event)
                    if (channel.pk, lang) in templates
                ),
                next((t for (cid, _), t in templates.items() if cid == channel.pk), None),
            )
            if template is None:
                rows.append((channel.key, address, TestSendResult(False, "no template")))
                continue
            version = pinned.get(template.pk, template.published)  # what the campaign sends
            result = template_test_send(
                template=template, address=address, context=context, version=version
            )
            rows.append((channel.key, address, result))
        if not taken:
            names = ", ".join(c.key for c in channels)
            rows.append(("", address, TestSendResult(False, f"not an address for any of: {names}")))
    return rows
