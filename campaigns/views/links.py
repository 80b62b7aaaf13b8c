from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.models import Message
from campaigns.recipients.inbox import message_mark_read
from campaigns.recipients.links import (
    InvalidLink,
    mark_read_read,
    unsubscribe_apply,
    unsubscribe_read,
)


def link_invalid(request: HttpRequest, error: Exception) -> HttpResponse:
    """A tampered or expired signed link: a clear page, status 400, nothing changed."""
    return render(request, "notifier/link_invalid.html", {"error": str(error)}, status=400)


@csrf_exempt  # RFC 8058: mail providers POST without a session; the signed token authorises
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: what the link turns off, a button, and the preference centre. POST (the button,
    or a mail provider's one-click ``List-Unsubscribe=One-Click``): opt out at once."""
    try:
        apply = request.method == "POST"
        found = unsubscribe_apply(token) if apply else unsubscribe_read(token)
    except InvalidLink as error:
        return link_invalid(request, error)
    return render(
        request,
        "notifier/unsubscribe.html",
        {"found": found, "done": request.method == "POST"},
    )


@require_http_methods(["GET", "POST"])
def mark_read(request: HttpRequest, token: str) -> HttpResponse:
    """The signed "mark as read" link of a message (``{{ mark_read_url }}``). GET asks and
    changes nothing (mail scanners and link previews follow links with GET); the page's
    button POSTs (CSRF as every form) and marks the message and its inbox items read."""
    try:
        uuid = mark_read_read(token)
    except InvalidLink as error:
        return link_invalid(request, error)
    message = Message.objects.select_related("event").filter(uuid=uuid).first()
    if message is None:
        return render(request, "notifier/mark_read.html", {"gone": True}, status=404)
    marked = message_mark_read(uuid=uuid) if request.method == "POST" else None
    return render(
        request,
        "notifier/mark_read.html",
        {"message": message, "done": marked is not None, "marked": marked or []},
    )
