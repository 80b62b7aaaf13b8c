"""The site's own views (the notification pages are campaigns.urls)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.views import defaults

#: Parts of the site whose 403 keeps the admin's frame (its sidebar and header).
ADMIN_NAMESPACES = {"admin", "django_rq"}


class LoginView(auth_views.LoginView):
    """The end users' login page, which staff may use too: without a safe ``next``, staff
    land in the admin and everyone else on ``LOGIN_REDIRECT_URL`` (their inbox)."""

    template_name = "notifier/login.html"

    def get_default_redirect_url(self) -> str:
        if self.request.user.is_staff:
            return reverse("admin:index")
        return super().get_default_redirect_url()


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The 403 page (``handler403``). A staff member refused a page of the admin (or of the
    queue dashboard) stays in the admin: its navigation, and what they may not do; everyone
    else gets the site's plain page."""
    match = getattr(request, "resolver_match", None)
    namespaces = set(match.namespaces) if match else set()
    user = getattr(request, "user", None)
    if namespaces & ADMIN_NAMESPACES and user is not None and user.is_active and user.is_staff:
        context = {
            **admin.site.each_context(request),
            "title": "You may not open this page",
            "reason": str(exception) if str(exception) else "",
        }
        return render(request, "admin/403.html", context, status=403)
    return defaults.permission_denied(request, exception)


def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``, which browsers ask for whatever a page says: the site's icon."""
    return redirect(static("notifier/favicon.ico"), permanent=True)
