"""The site's own views (the notification pages are campaigns.urls)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import reverse


class LoginView(auth_views.LoginView):
    """The end users' login page, which staff may use too: without a safe ``next``, staff
    land in the admin and everyone else on ``LOGIN_REDIRECT_URL`` (their inbox)."""

    template_name = "notifier/login.html"

    def get_default_redirect_url(self) -> str:
        if self.request.user.is_staff:
            return reverse("admin:index")
        return super().get_default_redirect_url()
