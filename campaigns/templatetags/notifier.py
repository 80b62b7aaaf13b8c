"""``{% load notifier %}{% notifier_badge %}``: the inbox's unread badge, for any page of the
host site; it refreshes itself by htmx polling."""

from django import template

from campaigns.recipients.inbox import inbox_item_link, inbox_unread_count

register = template.Library()


@register.inclusion_tag("notifier/inbox/_badge.html", takes_context=True)
def notifier_badge(context) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    authenticated = bool(user and user.is_authenticated)
    return {
        "unread": inbox_unread_count(user=user) if authenticated else 0,
        "authenticated": authenticated,
    }


@register.filter
def inbox_link(message) -> str:
    """Where opening an inbox item leads ("" when nowhere)."""
    return inbox_item_link(message)
