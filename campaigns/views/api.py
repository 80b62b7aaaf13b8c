"""The inbox as JSON, for mobile apps: session-authenticated (with CSRF on writes, as the
pages) or token-authenticated (``Authorization: Bearer <token>``, no CSRF: no cookie is
involved).

GET  /api/inbox/?filter=unread&cursor=…   items, next_cursor, unread, unseen
GET  /api/inbox/unread-count/             {"unread": n}
POST /api/inbox/seen/                     {"ids": [uuid, …]} or {"all": true}
POST /api/inbox/<uuid>/consume/           the item, consumed (read)
POST /api/inbox/<uuid>/archive/           the item, archived (and read)
GET  /api/inbox/?filter=archived          the archived items
"""

from __future__ import annotations

import functools
import uuid as uuid_module

from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from campaigns.domain.untrusted_json import InvalidJSON, json_parse
from campaigns.models import Message
from campaigns.recipients.inbox import (
    InvalidCursor,
    inbox_archive,
    inbox_item_link,
    inbox_mark_consumed,
    inbox_mark_seen,
    inbox_page,
    inbox_unread_count,
)
from campaigns.recipients.throttle import api_token_failure_record, api_token_lockout_seconds
from campaigns.recipients.tokens import api_token_user
from campaigns.views.security import client_address


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _csrf_failure(request: HttpRequest):
    check = CsrfViewMiddleware(lambda r: None)
    check.process_request(request)
    return check.process_view(request, None, (), {})


def api_view(view):
    """Authenticate by token or session; enforce CSRF on a session's writes. An address
    whose token attempts failed ``API_TOKEN_FAILURE_LIMIT`` times gets 429 with
    ``Retry-After`` (even with a good token) until its cool-off has passed."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        header = request.headers.get("Authorization", "")
        if header:
            client = client_address(request)
            wait = api_token_lockout_seconds(client=client)
            if wait:
                response = _error(
                    429,
                    f"too many failed API token attempts from your address: "
                    f"try again in {wait} seconds",
                )
                response["Retry-After"] = str(wait)
                return response
            scheme, _, raw = header.partition(" ")
            user = api_token_user(raw) if scheme.lower() == "bearer" and raw else None
            if user is None:
                api_token_failure_record(client=client)
                return _error(401, "invalid or inactive API token")
            request.user = user
        elif not request.user.is_authenticated:
            return _error(401, "log in or send Authorization: Bearer <token>")
        elif request.method not in ("GET", "HEAD", "OPTIONS") and _csrf_failure(request):
            return _error(403, "CSRF check failed: send the X-CSRFToken header")
        return view(request, *args, **kwargs)

    return wrapper


def item_json(message: Message) -> dict:
    return {
        "id": str(message.uuid),
        "event": message.event.key,
        "subject": message.subject,
        "text": message.text,
        "url": inbox_item_link(message),
        "created_at": message.created_at.isoformat(),
        "seen_at": message.seen_at.isoformat() if message.seen_at else None,
        "consumed_at": message.consumed_at.isoformat() if message.consumed_at else None,
        "archived_at": message.archived_at.isoformat() if message.archived_at else None,
    }


@require_GET
@api_view
def inbox_list(request: HttpRequest) -> JsonResponse:
    try:
        page = inbox_page(
            user=request.user,
            cursor=request.GET.get("cursor", ""),
            unread_only=request.GET.get("filter") == "unread",
            archived=request.GET.get("filter") == "archived",
        )
    except InvalidCursor as error:
        return _error(400, str(error))
    return JsonResponse(
        {
            "items": [item_json(m) for m in page.items],
            "next_cursor": page.next_cursor or None,
            "unread": page.unread,
            "unseen": page.unseen,
        }
    )


@require_GET
@api_view
def unread_count(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"unread": inbox_unread_count(user=request.user)})


@require_POST
@api_view
def mark_seen(request: HttpRequest) -> JsonResponse:
    try:
        body = json_parse(request.body or b"{}", expect=dict)
    except InvalidJSON as error:
        return _error(400, f'{error}: send {{"ids": [...]}} or {{"all": true}}')
    if body.get("all") is True:
        marked = inbox_mark_seen(user=request.user)
    elif isinstance(body.get("ids"), list):
        try:
            ids = [uuid_module.UUID(str(value)) for value in body["ids"]]
        except ValueError:
            return _error(400, "ids must be message ids (UUIDs)")
        try:
            marked = inbox_mark_seen(user=request.user, uuids=ids)
        except Message.DoesNotExist:
            return _error(404, "no such message in your inbox")
    else:
        return _error(400, 'send {"ids": [...]} or {"all": true}')
    return JsonResponse({"marked": marked, "unread": inbox_unread_count(user=request.user)})


@require_POST
@api_view
def consume(request: HttpRequest, uuid) -> JsonResponse:
    try:
        message = inbox_mark_consumed(user=request.user, uuid=uuid)
    except Message.DoesNotExist:
        return _error(404, "no such message in your inbox")
    return JsonResponse(item_json(message))


@require_POST
@api_view
def archive(request: HttpRequest, uuid) -> JsonResponse:
    try:
        message = inbox_archive(user=request.user, uuid=uuid)
    except Message.DoesNotExist:
        return _error(404, "no such message in your inbox")
    return JsonResponse(item_json(message))
