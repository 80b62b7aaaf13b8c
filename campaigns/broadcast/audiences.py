"""Audiences: who a campaign goes to, read in id order and in chunks.

Every audience gives recipients as ``notify()`` takes them: users by id (their name, email,
addresses, language and timezone are filled in from the user when the campaign plans),
contacts with their fields and extra columns."""

from __future__ import annotations

from typing import Any

import orjson
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models.functions import Cast

from campaigns.conf import app_settings
from campaigns.models import Audience, AudienceKind, Contact
from campaigns.outbox.queueing import chunked

#: Recipient keys a contact's extra columns may not override.
_CONTACT_RESERVED = {"user_id", "email", "phone", "name", "language", "tz", "contact_id"}
#: A contact's own fields, as a recipient has them.
_CONTACT_FIELDS = ("email", "phone", "name", "language", "tz")


def audience_queryset(audience: Audience) -> models.QuerySet:
    """The audience's source rows (users or contacts), ordered by id."""
    if audience.kind == AudienceKind.CONTACTS:
        return Contact.objects.filter(audience=audience).order_by("pk")
    users = get_user_model().objects.filter(is_active=True)
    if audience.kind == AudienceKind.GROUP:
        users = users.filter(groups=audience.group_id)
    elif audience.kind == AudienceKind.FILTER:
        if audience.joined_after:
            users = users.filter(date_joined__date__gte=audience.joined_after)
        if audience.joined_before:
            users = users.filter(date_joined__date__lte=audience.joined_before)
        if audience.logged_in_since:
            users = users.filter(last_login__date__gte=audience.logged_in_since)
        if audience.email_domain:
            users = users.filter(email__iendswith="@" + audience.email_domain)
        if audience.language:
            users = users.filter(notification_profile__language__iexact=audience.language)
    return users.order_by("pk")


def audience_size(audience: Audience) -> int:
    return audience_queryset(audience).count()


def audience_recipients(audience: Audience, first_id: int, last_id: int) -> list[dict[str, Any]]:
    """The recipients with source ids ``first_id``..``last_id``, as ``notify()`` takes them:
    users by id (notify adds their addresses, language and timezone), contacts with their
    fields and extra columns."""
    rows = audience_queryset(audience).filter(pk__gte=first_id, pk__lte=last_id)
    if audience.kind != AudienceKind.CONTACTS:
        return [{"user_id": pk} for pk in rows.values_list("pk", flat=True)]
    # The extra columns as JSON text, parsed by orjson: the ORM's JSONField parses each
    # row with json.loads and builds a dict per row, most of reading a chunk.
    rows = rows.annotate(data_text=Cast("data", models.TextField())).values_list(
        "pk", "email", "phone", "name", "language", "tz", "data_text"
    )
    people = []
    for pk, *fields, data in rows:
        extra = orjson.loads(data) if data else None
        person = {k: v for k, v in (extra or {}).items() if k not in _CONTACT_RESERVED}
        person["contact_id"] = pk
        for name, value in zip(_CONTACT_FIELDS, fields, strict=True):
            if value:
                person[name] = value
        people.append(person)
    return people


def source_chunks(audience: Audience) -> list[tuple[int, int, int]]:
    """(first id, last id, size) per chunk of the audience, from one read of its ids."""
    ids = list(audience_queryset(audience).values_list("pk", flat=True))
    return [(part[0], part[-1], len(part)) for part in chunked(ids, app_settings.CAMPAIGN_CHUNK)]
