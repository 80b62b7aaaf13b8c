"""The in-app inbox: a user's messages on the inbox channel(s), and what they do with them.

An inbox item is a ``sent`` Message on a channel whose backend is the inbox backend. Shown in
a list, it is *seen* (``seen_at``); opened (its link, "done", or the signed "mark as read"
link of an email about it), it is *consumed* (``consumed_at``). "Unread" means not consumed
yet: the badge counts those, with one indexed query (``message_user_unread_idx``).
*Archived* (``archived_at``, a column of its own, not a delivery state) items are put away:
the lists leave them out but the archive's, and archiving reads them too, so the count's
index stays as it is.

Every function takes the user and filters on it, so nobody reaches another user's items.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from campaigns.models import Message, MessageStatus
from campaigns.outbox.escalation import SEEN_ON_INBOX, escalations_stop
from channels.models import ChannelConfig
from channels.registry import UnknownBackend, backend_class

PAGE_SIZE = 20
#: The fields an inbox list reads (the outbox row holds much more).
LIST_FIELDS = (
    "id",
    "uuid",
    "user_id",
    "channel_id",
    "event_id",
    "event__key",
    "event__name",
    "subject",
    "text",
    "context",
    "extra",
    "status",
    "created_at",
    "seen_at",
    "consumed_at",
    "archived_at",
)


class InvalidCursor(ValueError):
    pass


def inbox_channel_ids() -> list[int]:
    """The channels whose backend stores the messages people read (the in-app inbox): one
    small query."""
    ids = []
    for pk, path in ChannelConfig.objects.values_list("pk", "backend"):
        try:
            if backend_class(path).stores_messages:
                ids.append(pk)
        except (UnknownBackend, ImportError):
            continue
    return ids


def inbox_messages(*, user, channel_ids: Iterable[int] | None = None) -> QuerySet[Message]:
    """A user's inbox items, newest first."""
    if channel_ids is None:
        channel_ids = inbox_channel_ids()
    return (
        Message.objects.filter(user=user, channel_id__in=list(channel_ids))
        .filter(status=MessageStatus.SENT)
        .order_by("-created_at", "-id")
    )


def inbox_unread_count(*, user, channel_ids: Iterable[int] | None = None) -> int:
    """How many of the user's inbox items are not consumed yet (an index-only count)."""
    if not getattr(user, "is_authenticated", False):
        return 0
    return (
        inbox_messages(user=user, channel_ids=channel_ids).filter(consumed_at__isnull=True).count()
    )


#: The lists of the inbox: everything not archived, the unread among it, the archive.
VIEWS = ("all", "unread", "archived")


@dataclass(slots=True)
class InboxPage:
    items: list[Message]
    next_cursor: str
    unread: int
    unseen: int


def cursor_encode(message: Message) -> str:
    raw = f"{message.created_at.isoformat()}|{message.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, pk = raw.rsplit("|", 1)
        when = dt.datetime.fromisoformat(stamp)
        if timezone.is_naive(when):
            raise ValueError("naive")
        return when, int(pk)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidCursor(f"{cursor!r} is not a cursor of this inbox") from None


def inbox_page(
    *,
    user,
    cursor: str = "",
    unread_only: bool = False,
    archived: bool = False,
    size: int = PAGE_SIZE,
) -> InboxPage:
    """One page of the inbox after ``cursor`` (keyset pagination: stable while new items
    arrive): items not archived (the unread among them with ``unread_only``), or the
    archived ones. Reads only; a fixed number of queries whatever the inbox holds."""
    channel_ids = inbox_channel_ids()
    base = inbox_messages(user=user, channel_ids=channel_ids)
    unread = base.filter(consumed_at__isnull=True).count()
    unseen = base.filter(seen_at__isnull=True).count()
    if archived:
        items_qs = base.filter(archived_at__isnull=False)
    else:
        items_qs = base.filter(archived_at__isnull=True)
        if unread_only:
            items_qs = items_qs.filter(consumed_at__isnull=True)
    if cursor:
        when, pk = cursor_decode(cursor)
        items_qs = items_qs.filter(Q(created_at__lt=when) | Q(created_at=when, id__lt=pk))
    items = list(items_qs.select_related("event").only(*LIST_FIELDS)[: size + 1])
    next_cursor = cursor_encode(items[size - 1]) if len(items) > size else ""
    items = items[:size]
    return InboxPage(items=items, next_cursor=next_cursor, unread=unread, unseen=unseen)


def inbox_page_mark_seen(*, user, page: InboxPage) -> InboxPage:
    """Mark the items a page shows seen (the page keeps telling they were new: their
    ``seen_at`` stays as read); returns the page with its unseen count updated."""
    fresh = [m.pk for m in page.items if m.seen_at is None]
    if fresh:
        marked = Message.objects.filter(pk__in=fresh, user=user, seen_at__isnull=True).update(
            seen_at=timezone.now()
        )
        # The later steps of an escalation waiting on them: one indexed read when there is
        # none. (No transaction of its own: were this lost, the send's recheck would still
        # find the item seen.)
        escalations_stop(fresh, how=SEEN_ON_INBOX)
        page.unseen = max(page.unseen - marked, 0)
    return page


def inbox_message_get(*, user, uuid) -> Message:
    """One of the user's inbox items; ``Message.DoesNotExist`` for anyone else's."""
    return inbox_messages(user=user).get(uuid=uuid)


def inbox_mark_seen(*, user, uuids: Iterable | None = None) -> int:
    """Mark the user's items seen (all of them when ``uuids`` is None); returns how many
    changed (items already seen count as none). Raises ``Message.DoesNotExist``, marking
    nothing, when any of ``uuids`` is not one of the user's inbox items — unknown or someone
    else's alike, so the caller cannot tell which."""
    qs = inbox_messages(user=user)
    if uuids is not None:
        wanted = set(uuids)
        if qs.filter(uuid__in=wanted).count() != len(wanted):
            raise Message.DoesNotExist("no such message in your inbox")
        qs = qs.filter(uuid__in=wanted)
    with transaction.atomic():  # the later steps of what was unseen, then the marks
        escalations_stop(qs.filter(seen_at__isnull=True).values("pk"), how=SEEN_ON_INBOX)
        return qs.filter(seen_at__isnull=True).update(seen_at=timezone.now())


def inbox_mark_consumed(*, user, uuid) -> Message:
    """Mark one of the user's items consumed (and seen). Repeating it changes nothing.
    Raises ``Message.DoesNotExist`` for anyone else's item."""
    message = inbox_message_get(user=user, uuid=uuid)
    now = timezone.now()
    fields = []
    if message.consumed_at is None:
        message.consumed_at = now
        fields.append("consumed_at")
    if message.seen_at is None:
        message.seen_at = now
        fields.append("seen_at")
    if fields:
        with transaction.atomic():
            message.save(update_fields=fields)
            if "seen_at" in fields:
                escalations_stop([message.pk], how=SEEN_ON_INBOX)
    return message


def inbox_archive(*, user, uuid) -> Message:
    """Put one of the user's items away: archived, and read (an archived item is not waiting
    for anyone). Repeating it changes nothing. ``Message.DoesNotExist`` for anyone else's."""
    message = inbox_message_get(user=user, uuid=uuid)
    now = timezone.now()
    fields = [
        name for name in ("archived_at", "consumed_at", "seen_at") if not getattr(message, name)
    ]
    for name in fields:
        setattr(message, name, now)
    if fields:
        with transaction.atomic():
            message.save(update_fields=fields)
            if "seen_at" in fields:
                escalations_stop([message.pk], how=SEEN_ON_INBOX)
    return message


def message_mark_read(*, uuid) -> list[Message]:
    """What the signed "mark as read" link of a message does: the message is read, and so
    are its user's inbox items written with it (the same event, in the same call: the same
    ``created_at``). Returns the messages it marked (none when all were read already)."""
    message = Message.objects.select_related("event").filter(uuid=uuid).first()
    if message is None:
        return []
    same = Message.objects.filter(pk=message.pk)
    if message.user_id is not None:
        same |= inbox_messages(user=message.user_id).filter(
            event_id=message.event_id, created_at=message.created_at
        )
    now = timezone.now()
    marked = list(same.filter(consumed_at__isnull=True))
    ids = [m.pk for m in marked]
    with transaction.atomic():
        Message.objects.filter(pk__in=ids).update(consumed_at=now)
        Message.objects.filter(pk__in=ids, seen_at__isnull=True).update(seen_at=now)
        if ids:
            escalations_stop(ids, how="read (its mark-as-read link)")
    return marked


def inbox_item_link(message: Message) -> str:
    """Where opening an item leads: ``extra["url"]``, else a ``url`` or ``link`` context
    value; only http(s) URLs and site paths, never ``javascript:``."""
    for value in (
        (message.extra or {}).get("url"),
        (message.context or {}).get("url"),
        (message.context or {}).get("link"),
    ):
        if isinstance(value, str) and (
            value.startswith(("https://", "http://"))
            or (value.startswith("/") and not value.startswith("//"))
        ):
            return value
    return ""
