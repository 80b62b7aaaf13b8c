"""What a campaign sends: its channels, what stops it, and its messages for a chunk of
recipients, planned by the same code as ``notify()`` (``outbox.plan``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from campaigns.broadcast.audiences import audience_size
from campaigns.domain.context import context_validate, recipients_normalize
from campaigns.exceptions import NotifierError
from campaigns.models import Campaign, Template, TemplateVersion
from campaigns.outbox.plan import NotifyResult, PlanOptions, event_load, plan
from channels.models import ChannelConfig


def campaign_channels(campaign: Campaign) -> list[ChannelConfig]:
    """The campaign's channels, or, when it names none, every active channel the event has an
    active template for."""
    chosen = list(campaign.channels.all()) if campaign.pk else []
    if chosen:
        return chosen
    with_templates = Template.objects.filter(event=campaign.event_id, is_active=True).values(
        "channel_id"
    )
    return list(ChannelConfig.objects.filter(is_active=True, pk__in=with_templates))


def campaign_pins(campaign: Campaign) -> dict[str, int]:
    """{template id: version id} of the published templates the campaign would send now: what
    it pins when it is started, so later publishing changes none of its messages."""
    channels = campaign_channels(campaign)
    rows = Template.objects.filter(
        event=campaign.event_id, channel__in=channels, is_active=True, published__isnull=False
    ).values_list("pk", "published_id")
    return {str(pk): version_id for pk, version_id in rows}


def campaign_versions(campaign: Campaign) -> dict[int, TemplateVersion]:
    """The versions the campaign was started with, by template id (none for a draft)."""
    pins = campaign.template_versions or {}
    versions = TemplateVersion.objects.filter(pk__in=pins.values()).select_related(
        "layout_version", "template__event", "template__channel"
    )
    return {version.template_id: version for version in versions}


def campaign_problems(campaign: Campaign) -> list[str]:
    """What stops this campaign from being sent, in words an operator can act on."""
    problems = []
    if not campaign.event.is_active:
        problems.append(f"the event {campaign.event.key!r} is inactive")
    try:
        context_validate(event=campaign.event, context=campaign.context or {})
    except NotifierError as error:
        problems.append(str(error))
    channels = campaign_channels(campaign)
    if not channels:
        problems.append("no active channel has a template for this event")
    inactive = [c.key for c in channels if not c.is_active]
    if inactive:
        problems.append(f"inactive channel(s): {', '.join(inactive)}")
    if campaign.audience_id and audience_size(campaign.audience) == 0:
        problems.append(f"the audience {campaign.audience.name!r} is empty")
    return problems


def context_ok(campaign: Campaign) -> bool:
    try:
        context_validate(event=campaign.event, context=campaign.context or {})
    except NotifierError:
        return False
    return True


def campaign_plan(
    campaign: Campaign,
    people: list[dict[str, Any]],
    *,
    seen: set[tuple[int, str]] | None = None,
    rows_read: bool = True,
    now: dt.datetime | None = None,
) -> NotifyResult:
    """The campaign's messages for ``people`` (a chunk of its audience) and the skips, as
    ``notify()`` would plan them with the campaign's event, values, channels and time, plus
    what only a campaign does: rows marked as the campaign's, an address that already has it
    on a channel skipped as "duplicate address" (``seen`` carries the pairs planned by earlier
    chunks of a dry run, and is updated), and "09:00 local". With ``rows_read=False`` the
    campaign's rows are not read for those addresses: the caller's insert meets them in the
    unique index instead. Writes nothing. Raises a NotifierError when the event, its values or
    a channel no longer allow sending."""
    event = event_load(campaign.event)
    keys = [channel.key for channel in campaign.channels.all()]
    planned = plan(
        event=event,
        people=recipients_normalize(people),
        context=context_validate(event=event, context=campaign.context or {}),
        channels=keys or None,
        options=PlanOptions(
            scheduled_at=campaign.send_at,
            local_time=campaign.local_time,
            tag=f"campaign:{campaign.pk}",
            skip_invalid=True,
            behaviour=event.trigger,
            campaign=campaign,
            campaign_rows_read=rows_read,
            seen=seen,
        ),
        now=now,
    )
    pins = campaign.template_versions or {}
    for message in planned.messages:  # the version it was started with, not today's
        message.template_version_id = pins.get(
            str(message.template_id), message.template_version_id
        )
    return planned
