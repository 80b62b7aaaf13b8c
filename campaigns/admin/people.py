"""The support desk's pages: find a person by name, username, email or phone, and their
timeline (every message on every channel, with its state, attempts and provider feedback,
and the decisions that stopped one). Thin: the reads are ``campaigns.support.timeline``'s."""

from __future__ import annotations

from django.template.response import TemplateResponse
from django.urls import reverse

from campaigns.support.timeline import people_search, person_get, person_timeline


def search_page(request, admin_site) -> TemplateResponse:
    query = request.GET.get("q", "").strip()
    found = people_search(query) if query else []
    context = {
        **admin_site.each_context(request),
        "title": "Find a person",
        "query": query,
        "people": found,
    }
    return TemplateResponse(request, "admin/campaigns/people/search.html", context)


def timeline_page(request, admin_site, kind: str, key: str, *, may_resend: bool):
    person = person_get(kind, key)
    if person is None:
        return None
    timeline = person_timeline(person)
    context = {
        **admin_site.each_context(request),
        "title": person.label,
        "timeline": timeline,
        "person": person,
        "may_resend": may_resend,
        "here": request.get_full_path(),
        "search_url": reverse("admin:campaigns_people"),
    }
    return TemplateResponse(request, "admin/campaigns/people/timeline.html", context)
