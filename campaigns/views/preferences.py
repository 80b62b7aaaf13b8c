from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from campaigns.recipients.links import InvalidLink, preferences_subject_read
from campaigns.recipients.preferences import (
    PreferenceSubject,
    preferences_read,
    preferences_save,
    preferences_subject_for_link,
    preferences_subject_for_user,
)
from campaigns.views.links import link_invalid


def _page(request: HttpRequest, subject: PreferenceSubject, *, via_link: bool) -> HttpResponse:
    saved = False
    if request.method == "POST":
        preferences_save(
            subject=subject,
            on=list(request.POST),
            frequencies={
                name: request.POST[name] for name in request.POST if name.startswith("digest-")
            },
            by=request.user if request.user.is_authenticated and not via_link else None,
        )
        if not request.htmx:
            return redirect(f"{request.path}?saved=1")
        saved = True
    context = {
        "subject": subject,
        "page": preferences_read(subject),
        "saved": saved or request.GET.get("saved") == "1",
        "via_link": via_link,
    }
    if request.htmx and request.method == "POST":
        return render(request, "notifier/preferences/_form.html", context)
    return render(request, "notifier/preferences/preferences.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def preferences(request: HttpRequest) -> HttpResponse:
    return _page(request, preferences_subject_for_user(request.user), via_link=False)


@require_http_methods(["GET", "POST"])
def preferences_link(request: HttpRequest, token: str) -> HttpResponse:
    """The preference centre without a login, through the signed link every email carries."""
    try:
        found = preferences_subject_read(token)
    except InvalidLink as error:
        return link_invalid(request, error)
    subject = preferences_subject_for_link(**found)
    if subject is None:
        raise Http404("Nobody receives notifications at this link any more")
    return _page(request, subject, via_link=True)
