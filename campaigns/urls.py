"""End-user pages: ``path("", include("campaigns.urls"))`` in the site's urls."""

from django.urls import path

from campaigns.views import api, hooks, inbox, links, preferences, webpush

app_name = "notifier"

urlpatterns = [
    path("inbox/", inbox.inbox, name="inbox"),
    path("inbox/badge/", inbox.badge, name="inbox-badge"),
    path("inbox/seen/", inbox.mark_all_seen, name="inbox-seen"),
    path("inbox/<uuid:uuid>/done/", inbox.consume, name="inbox-consume"),
    path("inbox/<uuid:uuid>/open/", inbox.open_link, name="inbox-open"),
    path("inbox/<uuid:uuid>/archive/", inbox.archive, name="inbox-archive"),
    path("inbox/summary/", inbox.summary, name="inbox-summary"),
    path("api/inbox/", api.inbox_list, name="api-inbox"),
    path("api/inbox/unread-count/", api.unread_count, name="api-unread-count"),
    path("api/inbox/seen/", api.mark_seen, name="api-seen"),
    path("api/inbox/<uuid:uuid>/consume/", api.consume, name="api-consume"),
    path("api/inbox/<uuid:uuid>/archive/", api.archive, name="api-archive"),
    path("preferences/", preferences.preferences, name="preferences"),
    path("preferences/link/<str:token>/", preferences.preferences_link, name="preferences-link"),
    path("unsubscribe/<str:token>/", links.unsubscribe, name="unsubscribe"),
    path("read/<str:token>/", links.mark_read, name="mark-read"),
    path("sw.js", webpush.service_worker, name="webpush-sw"),
    path("webpush/subscription/", webpush.subscribe, name="webpush-subscribe"),
    path("webpush/unsubscribe/", webpush.unsubscribe, name="webpush-unsubscribe"),
    path("hooks/twilio/<slug:channel_key>/status/", hooks.twilio_status, name="twilio-status"),
]
