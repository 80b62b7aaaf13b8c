"""Sidebar permission callbacks (UNFOLD["SIDEBAR"]): show an entry only to who may view it."""


def is_superuser(request) -> bool:
    return request.user.is_superuser


def can_view_events(request) -> bool:
    return request.user.has_perm("campaigns.view_event")


def can_view_templates(request) -> bool:
    return request.user.has_perm("campaigns.view_template")


def can_view_layouts(request) -> bool:
    return request.user.has_perm("campaigns.view_layout")


def can_view_partials(request) -> bool:
    return request.user.has_perm("campaigns.view_partial")


def can_view_channels(request) -> bool:
    return request.user.has_perm("channels.view_channelconfig")


def can_view_messages(request) -> bool:
    return request.user.has_perm("campaigns.view_message")


def can_view_optouts(request) -> bool:
    return request.user.has_perm("campaigns.view_optout")


def can_view_campaigns(request) -> bool:
    return request.user.has_perm("campaigns.view_campaign")


def can_view_audiences(request) -> bool:
    return request.user.has_perm("campaigns.view_audience")


def can_view_contacts(request) -> bool:
    return request.user.has_perm("campaigns.view_contact")


def can_view_webhooks(request) -> bool:
    return request.user.has_perm("campaigns.view_webhookendpoint")


def can_view_webhook_deliveries(request) -> bool:
    return request.user.has_perm("campaigns.view_webhookdelivery")
