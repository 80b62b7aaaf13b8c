from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from campaigns.models import Message
from campaigns.recipients.inbox import (
    VIEWS,
    InvalidCursor,
    inbox_archive,
    inbox_item_link,
    inbox_mark_consumed,
    inbox_mark_seen,
    inbox_page,
    inbox_page_mark_seen,
    inbox_unread_count,
)
from campaigns.recipients.webpush import webpush_settings

#: htmx event the page's fragments listen to: the unread count changed.
CHANGED = "notifier:inbox-changed"


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/inbox/"


def _filter(request: HttpRequest) -> str:
    selected = request.GET.get("filter", "all")
    return selected if selected in VIEWS else "all"


@require_GET
@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    """The user's inbox, newest first; the items shown are marked seen."""
    selected = _filter(request)
    try:
        page = inbox_page(
            user=request.user,
            cursor=request.GET.get("cursor", ""),
            unread_only=selected == "unread",
            archived=selected == "archived",
        )
    except InvalidCursor as error:
        return HttpResponseBadRequest(str(error))
    page = inbox_page_mark_seen(user=request.user, page=page)  # shown: seen
    context = {"page": page, "filter": selected, "next_path": request.get_full_path()}
    if request.htmx and request.GET.get("cursor"):  # "more": the next items, appended
        return render(request, "notifier/inbox/_items.html", context)
    context["webpush"] = webpush_settings()  # "Enable browser notifications", if offered
    return render(request, "notifier/inbox/inbox.html", context)


def _item(request: HttpRequest, uuid) -> Message:
    try:
        return inbox_mark_consumed(user=request.user, uuid=uuid)
    except Message.DoesNotExist:
        raise Http404("No such message in your inbox") from None


@require_POST
@login_required
def consume(request: HttpRequest, uuid) -> HttpResponse:
    """ "Done": the item is consumed. htmx gets the item back; a form post, a redirect."""
    message = _item(request, uuid)
    if request.htmx:
        response = render(
            request, "notifier/inbox/_item.html", {"message": message, "next_path": _back(request)}
        )
        response["HX-Trigger"] = CHANGED
        return response
    return redirect(_back(request))


@require_POST
@login_required
def open_link(request: HttpRequest, uuid) -> HttpResponse:
    """Opening an item's link consumes it, then leads there."""
    message = _item(request, uuid)
    return redirect(inbox_item_link(message) or _back(request))


@require_POST
@login_required
def mark_all_seen(request: HttpRequest) -> HttpResponse:
    inbox_mark_seen(user=request.user)
    if request.htmx:
        response = render(request, "notifier/inbox/_all_seen.html")
        response["HX-Trigger"] = CHANGED
        return response
    return redirect(_back(request))


@require_POST
@login_required
def archive(request: HttpRequest, uuid) -> HttpResponse:
    """ "Archive": the item is put away (and read). htmx gets nothing back (the item leaves
    the list) and the count refreshes; a form post, a redirect."""
    try:
        inbox_archive(user=request.user, uuid=uuid)
    except Message.DoesNotExist:
        raise Http404("No such message in your inbox") from None
    if request.htmx:
        response = HttpResponse("")
        response["HX-Trigger"] = CHANGED
        return response
    return redirect(_back(request))


@require_GET
@login_required
def summary(request: HttpRequest) -> HttpResponse:
    """The inbox's heading line ("2 unread"), for htmx: refreshed when the inbox changes and
    every 10 seconds, so it follows items read here and items arriving."""
    return render(
        request, "notifier/inbox/_summary.html", {"unread": inbox_unread_count(user=request.user)}
    )


@require_GET
def badge(request: HttpRequest) -> HttpResponse:
    """The unread badge, for htmx polling (empty for anonymous visitors)."""
    if not request.user.is_authenticated:
        return HttpResponse("")
    return render(
        request,
        "notifier/inbox/_badge.html",
        {"unread": inbox_unread_count(user=request.user), "authenticated": True},
    )
