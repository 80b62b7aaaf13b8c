"""The support desk's pages: find a person by name, username, email or phone, and their
timeline (every message on every channel, with its state, attempts and provider feedback,
and the decisions that stopped one). Thin: the reads are ``campaigns.support.timeline``'s."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from campaigns.exceptions import NotifierError
from campaigns.support.send import SendMessageForm, support_message_send
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


def timeline_page(
    request, admin_site, kind: str, key: str, *, may_resend: bool, may_send: bool = False
):
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
        "may_send": may_send,
        "here": request.get_full_path(),
        "search_url": reverse("admin:campaigns_people"),
    }
    return TemplateResponse(request, "admin/campaigns/people/timeline.html", context)


def send_page(request, admin_site, kind: str, key: str):
    """ "Send a message" to a person: the form; a POST shows what will be sent and asks; the
    confirming POST (``confirm=yes``) sends it through the outbox and returns to the
    timeline, where the message (or the decision that stopped it) is the newest line."""
    person = person_get(kind, key)
    if person is None:
        return None
    form = SendMessageForm(request.POST or None)
    confirming = False
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if request.POST.get("confirm") == "yes":
            try:
                outcome = support_message_send(
                    person=person,
                    channel_key=data["channel"],
                    subject=data["subject"],
                    text=data["text"],
                    sender=request.user,
                )
            except NotifierError as error:
                form.add_error(None, str(error))
            else:
                if outcome.queued:
                    messages.success(request, f"The message to {person.label} is on its way.")
                else:
                    messages.warning(
                        request, f"Nothing was sent to {person.label}: {outcome.why_not}."
                    )
                return redirect(person.url)
        elif request.POST.get("edit") != "yes":  # "No, change it" comes back to the form
            confirming = True
    channel_names = dict(form.fields["channel"].choices)
    context = {
        **admin_site.each_context(request),
        "title": f"Send a message to {person.label}",
        "person": person,
        "form": form,
        "confirming": confirming,
        "channel_name": channel_names.get(form.cleaned_data.get("channel", ""), "")
        if confirming
        else "",
    }
    return TemplateResponse(request, "admin/campaigns/people/send.html", context)
