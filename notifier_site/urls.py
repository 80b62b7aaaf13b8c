from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("django-rq/", include("django_rq.urls")),
    # ESP tracking webhooks (django-anymail), e.g. /anymail/postmark/tracking/; 403 until
    # ANYMAIL["WEBHOOK_SECRET"] is set, then anymail checks the ESP's basic auth.
    path("anymail/", include("campaigns.tracking_urls")),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="notifier/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("campaigns.urls")),
]
