"""Ad-hoc messages: ``notify_text()`` sends a text someone wrote (a support agent's answer, a
developer's one-off) without an event of its own or a template.

It goes the way every message goes: planned by ``plan`` (addresses, opt-outs — "all" and the
channel's, and the built-in ``adhoc`` event's —, availability windows), written to the outbox
as Message rows, dispatched by the RQ workers with their retries. What differs: the rows
belong to the built-in event ``adhoc`` and carry their own subject, text and HTML, which the
dispatch sends as they are (``dispatch._render``): the text is never read as a template, so
``{{ 7|add:1 }}`` arrives as written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from campaigns.domain.context import recipients_normalize, text_check
from campaigns.exceptions import InvalidArgument, UnknownEvent
from campaigns.models import Event, Message
from campaigns.models.events import ADHOC_EVENT
from campaigns.outbox.catalog import catalog
from campaigns.outbox.decisions import decisions_record
from campaigns.outbox.notify import messages_write
from campaigns.outbox.plan import NotifyResult, PlanOptions, channels_select, plan

_SUBJECT_LENGTH = Message._meta.get_field("subject").max_length
#: Plenty for a message a person writes, and a bound on what one row stores.
TEXT_LENGTH = 100_000


def notify_text(
    recipients: Any,
    *,
    subject: str = "",
    text: str,
    channels: str | Iterable[str],
    html: str | None = None,
    trigger_user: Any = None,
) -> NotifyResult:
    """Send ``text`` (and ``subject``; ``html`` only when given: the text is never turned
    into HTML unescaped) to ``recipients`` on ``channels``, through the outbox.

    Raises InvalidArgument naming the argument (no channels, an empty text, a subject of more
    than one line …), UnknownChannel, or InvalidRecipient (a malformed address), with nothing
    written. Recipients opted out of everything, of the channel or of ad-hoc messages are
    skipped (``result.skipped``) and the decision recorded, as ``notify()`` does."""
    keys = _channels_check(channels)
    subject = text_check("subject", subject, max_length=_SUBJECT_LENGTH)
    if "\n" in subject or "\r" in subject:
        raise InvalidArgument("subject", "must be one line")
    text = text_check("text", text, max_length=TEXT_LENGTH)
    if not text.strip():
        raise InvalidArgument("text", "is empty: write the message")
    html = text_check("html", html, max_length=TEXT_LENGTH, allow_none=True)
    trigger_user_id = _trigger_user_id(trigger_user)
    cat = catalog()
    channels_select(keys=keys, cat=cat)  # UnknownChannel before anything else is read
    people = recipients_normalize(recipients)
    event = adhoc_event(cat=cat)
    now = timezone.now()
    planned = plan(
        event=event,
        people=people,
        context={},
        channels=keys,
        options=PlanOptions(content=(subject.strip(), text, html), trigger_user_id=trigger_user_id),
        now=now,
        cat=cat,
    )
    with transaction.atomic():
        messages_write(planned.messages)
        decisions_record(planned.skipped, event=event, now=now)
    return planned


def adhoc_event(*, cat: Any = None) -> Event:
    """The built-in event of ad-hoc messages (from the catalog; made if it is missing)."""
    found = (cat or catalog()).events.get(ADHOC_EVENT)
    if found is not None:
        if not found.is_active:
            raise UnknownEvent(ADHOC_EVENT, inactive=True)
        return found
    event, _ = Event.objects.get_or_create(
        key=ADHOC_EVENT,
        defaults={
            "name": "Ad-hoc message",
            "description": "A text written by a person (notify_text(), the support desk's "
            "Send a message), sent without a template.",
        },
    )
    return event


def _channels_check(channels: Any) -> list[str]:
    keys = [channels] if isinstance(channels, str) else channels
    if not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys):
        raise InvalidArgument(
            "channels",
            "must be a channel key or a list of channel keys (an ad-hoc message "
            "has no templates to choose its channels from)",
        )
    keys = [key for key in dict.fromkeys(keys) if key]
    if not keys:
        raise InvalidArgument("channels", "is empty: name at least one channel")
    return keys


def _trigger_user_id(trigger_user: Any) -> int | None:
    if trigger_user is None:
        return None
    pk = getattr(trigger_user, "pk", None)
    if pk is None:
        raise InvalidArgument("trigger_user", "must be a saved user")
    return pk
