"""Previewing a template as a real recipient: find a user or a contact, and build the
recipient its messages would carry (name, email, language, timezone, a contact's columns).
Who may look someone up: users need ``auth.view_user`` or the recipient profiles' view
permission (Support), contacts the contacts' (Marketing)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q

from campaigns.domain.context import language_candidates
from campaigns.models import Contact, Event, Template
from campaigns.recipients.addresses import user_name, users_load

MAX_FOUND = 10
_CONTACT_KNOWN = ("email", "phone", "name", "language", "tz")


def may_pick_users(user) -> bool:
    return user.has_perm("auth.view_user") or user.has_perm("campaigns.view_recipientprofile")


def may_pick_contacts(user) -> bool:
    return user.has_perm("campaigns.view_contact")


def preview_recipients_search(*, query: str, user) -> list[tuple[str, str]]:
    """(reference, label) of up to ``MAX_FOUND`` users and contacts matching ``query`` (name,
    email, username) that ``user`` may see: ``user:12``, ``contact:7``."""
    query = query.strip()[:100]
    if not query:
        return []
    found: list[tuple[str, str]] = []
    if may_pick_users(user):
        model = get_user_model()
        match = Q(email__icontains=query) | Q(**{f"{model.USERNAME_FIELD}__icontains": query})
        for name in ("first_name", "last_name"):
            if any(f.name == name for f in model._meta.concrete_fields):
                match |= Q(**{f"{name}__icontains": query})
        for row in users_load(
            [
                {"user_id": pk}
                for pk in model.objects.filter(match).values_list("pk", flat=True)[:MAX_FOUND]
            ]
        ).values():
            found.append((f"user:{row['pk']}", f"{user_name(row)} <{row['email']}> (user)"))
    if may_pick_contacts(user):
        contacts = Contact.objects.filter(
            Q(name__icontains=query) | Q(email__icontains=query) | Q(phone__icontains=query)
        ).select_related("audience")[:MAX_FOUND]
        for contact in contacts:
            label = f"{contact.name or contact} <{contact.email or contact.phone}>"
            found.append((f"contact:{contact.pk}", f"{label} (contact, {contact.audience.name})"))
    return found[:MAX_FOUND]


def preview_recipient(*, ref: str, user) -> dict[str, Any] | None:
    """The recipient a message to ``ref`` (``user:12``, ``contact:7``) would carry, or None
    when there is none or ``user`` may not see it."""
    kind, _, raw_id = (ref or "").partition(":")
    if not raw_id.isdigit():
        return None
    if kind == "user" and may_pick_users(user):
        row = users_load([{"user_id": int(raw_id)}]).get(int(raw_id))
        if row is None:
            return None
        return {
            "user_id": row["pk"],
            "name": user_name(row),
            "email": row["email"] or "",
            "language": (row["notification_profile__language"] or "").lower(),
            "tz": row["notification_profile__timezone"] or settings.TIME_ZONE,
        }
    if kind == "contact" and may_pick_contacts(user):
        contact = Contact.objects.filter(pk=int(raw_id)).first()
        if contact is None:
            return None
        person = {k: v for k, v in (contact.data or {}).items() if k not in _CONTACT_KNOWN}
        for name in _CONTACT_KNOWN:
            person[name] = getattr(contact, name) or ""
        person["tz"] = person["tz"] or settings.TIME_ZONE
        return person
    return None


def template_for_recipient(event: Event, channel_id: int, recipient: dict) -> Template | None:
    """The template (of this event and channel) the recipient's language would choose."""
    templates = {
        t.language: t
        for t in Template.objects.filter(event=event, channel_id=channel_id, is_active=True)
    }
    for language in language_candidates(recipient.get("language") or None, event):
        if language in templates:
            return templates[language]
    return None
