import importlib.util
from functools import wraps

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import Http404
from django.urls import URLPattern, include, path, reverse
from django.views.generic import RedirectView
from django_rq import urls as rq_urls

from campaigns.views.service_api import api as service_api
from notifier_site.views import LoginView, favicon

handler403 = "notifier_site.views.permission_denied"


def superusers_only(view):
    """django-rq's views let any staff member in (and empty queues, delete jobs): ours let
    only active superusers. Others are sent to the admin's login, or refused with 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not (request.user.is_active and request.user.is_superuser):
            raise PermissionDenied("Only superusers may use the queue dashboard.")
        return view(request, *args, **kwargs)

    return wrapper


def no_rq_scheduler(request, *args, **kwargs):
    """django-rq's pages of rq-scheduler, which is not installed: RQ's own scheduler runs
    Notifier's cron jobs (README "Production"). A 404 that says so, not django-rq's 500."""
    raise Http404("rq-scheduler is not installed: RQ's own scheduler runs Notifier's cron jobs.")


def rq_dashboard_patterns() -> list[URLPattern]:
    """Every pattern of ``django_rq.urls``, its view wrapped by ``superusers_only`` (its stats
    JSON and metrics too: no RQ_API_TOKEN access); rq-scheduler's pages answer 404 when it is
    not installed."""
    scheduler_missing = importlib.util.find_spec("rq_scheduler") is None
    patterns = []
    for pattern in rq_urls.urlpatterns:
        if not isinstance(pattern, URLPattern):  # fail closed on a django-rq that nests
            raise ImproperlyConfigured(f"django_rq.urls includes {pattern!r}: wrap it too")
        callback = pattern.callback
        if scheduler_missing and str(pattern.pattern).startswith("schedulers/"):
            callback = no_rq_scheduler
        view = superusers_only(callback)
        patterns.append(URLPattern(pattern.pattern, view, pattern.default_args, pattern.name))
    return patterns


urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # Browsers ask for /favicon.ico whatever the page says: the same icon, from static.
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("django-rq/", include((rq_dashboard_patterns(), rq_urls.app_name))),
    # ESP tracking webhooks (django-anymail), e.g. /anymail/postmark/tracking/; 403 until
    # ANYMAIL["WEBHOOK_SECRET"] is set, then anymail checks the ESP's basic auth.
    path("anymail/", include("campaigns.tracking.urls")),
    # The HTTP API for services (service keys; OpenAPI schema at /api/v1/openapi.json).
    path("api/v1/", service_api.urls),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("campaigns.urls")),
]
