"""The probes: ``/healthz`` (the process answers), ``/readyz`` (the send path can work) and
``/metrics`` (Prometheus, behind a bearer token). ``notifier_site.probes.ProbesMiddleware``
answers them before any other middleware."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client.exposition import choose_encoder

from campaigns.ops import metrics as ops_metrics
from campaigns.ops.health import readiness


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    """200 as long as the process serves requests; touches neither the database nor Redis."""
    return _no_store(HttpResponse("ok\n", content_type="text/plain; charset=utf-8"))


def readyz(request: HttpRequest) -> HttpResponse:
    """200 when the database, its migrations, Redis, a worker and a recent sweep are there,
    503 otherwise; the body says pass or fail per check and nothing more."""
    result = readiness()
    return _no_store(JsonResponse(result.public(), status=200 if result.ok else 503))


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus's text format, for ``Authorization: Bearer <METRICS_TOKEN>``. Without a
    token configured the endpoint does not exist (404); a missing or wrong token gets 401."""
    token = settings.METRICS_TOKEN
    if not token:
        return _no_store(HttpResponse("Not Found\n", status=404, content_type="text/plain"))
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return _no_store(response)
    # Prometheus's text format 0.0.4, or what the scraper's Accept asks for (OpenMetrics).
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return _no_store(HttpResponse(encode(ops_metrics.registry()), content_type=content_type))
