"""Browser notifications: the service worker, and the page's subscription endpoints.

GET  /sw.js                        the service worker (its scope: the whole site)
POST /webpush/subscription/        the PushSubscription's JSON: stored as the user's address
POST /webpush/unsubscribe/         {"endpoint": …}: forgotten ("Disable")

Both POSTs need a signed-in user and the CSRF token (``X-CSRFToken``); they answer JSON,
errors as ``{"error": "…"}``.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from campaigns.domain.untrusted_json import InvalidJSON, json_parse
from campaigns.recipients.webpush import (
    InvalidSubscription,
    webpush_subscription_register,
    webpush_subscription_remove,
)


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _json_body(request: HttpRequest) -> dict:
    """The body's JSON object; ``InvalidJSON`` (a 400) for anything else."""
    return json_parse(request.body, expect=dict)


@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    body = render_to_string("notifier/webpush/sw.js", {"default_url": reverse("notifier:inbox")})
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"  # browsers check for a new worker on each visit
    response["Service-Worker-Allowed"] = "/"
    return response


@require_POST
def subscribe(request: HttpRequest) -> JsonResponse:
    if not request.user.is_authenticated:
        return _error(401, "log in to enable browser notifications")
    try:
        data = _json_body(request)
    except InvalidJSON as error:
        return _error(400, f"{error}: send the PushSubscription's toJSON()")
    try:
        address = webpush_subscription_register(user=request.user, subscription=data)
    except InvalidSubscription as error:
        return _error(400, str(error))
    return JsonResponse({"subscribed": True, "id": address.pk})


@require_POST
def unsubscribe(request: HttpRequest) -> JsonResponse:
    if not request.user.is_authenticated:
        return _error(401, "log in to disable browser notifications")
    try:
        data = _json_body(request)
    except InvalidJSON as error:
        return _error(400, f'{error}: send {{"endpoint": …}}')
    try:
        removed = webpush_subscription_remove(user=request.user, endpoint=data.get("endpoint"))
    except InvalidSubscription as error:
        return _error(400, str(error))
    return JsonResponse({"subscribed": False, "removed": removed})
