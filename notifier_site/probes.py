"""``/healthz``, ``/readyz`` and ``/metrics``, answered before any other middleware.

Docker, a load balancer or Prometheus ask at the container's own address, over plain http,
with whatever Host header that gives: ``ALLOWED_HOSTS`` would refuse them (400) and
``SECURE_SSL_REDIRECT`` send them away (301). These three build no URL from the Host header
and set no cookie, so they are answered first; every other path goes through the stack.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed

from campaigns.views import ops

PROBES = {"/healthz": ops.healthz, "/readyz": ops.readyz, "/metrics": ops.metrics}


class ProbesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = PROBES.get(request.path_info)
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        return view(request)
