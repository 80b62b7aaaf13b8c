"""Who a request comes from, for throttling, and what a throttled login sees.

``client_address`` is django-axes' ``AXES_CLIENT_IP_CALLABLE`` and the API's throttle key:
``REMOTE_ADDR``, or behind ``TRUSTED_PROXY_COUNT`` proxies the ``X-Forwarded-For`` entry that
the outermost of them wrote (the entries before it are the client's to invent). An IPv6
client is keyed by its /64 network, since one host is given a whole /64 to pick addresses from.
"""

from __future__ import annotations

import ipaddress
import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from campaigns.conf import app_settings


def client_address(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    candidate = remote
    count = app_settings.TRUSTED_PROXY_COUNT
    if count > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= count:
            candidate = forwarded[-count]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        try:
            address = ipaddress.ip_address(remote)
        except ValueError:
            return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return str(address)


def login_lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """django-axes' ``AXES_LOCKOUT_CALLABLE``: 429 with ``Retry-After`` and a page that says
    what happened and when to try again (every try meanwhile restarts the wait)."""
    cooloff = settings.AXES_COOLOFF_TIME
    seconds = math.ceil(cooloff.total_seconds())
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    response = render(  # rendered now: axes hands it back after the view's response phase
        request,
        "notifier/login_locked.html",
        {
            "username": username,
            "minutes": max(1, math.ceil(seconds / 60)),
            "until": timezone.now() + cooloff,
        },
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
