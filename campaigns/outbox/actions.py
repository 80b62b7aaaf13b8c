"""Use cases on existing messages: requeue failed ones, cancel pending ones; and selectors."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from campaigns.conf import app_settings
from campaigns.models import Message, MessageRelatedObject, MessageStatus
from campaigns.models.messages import sources_of
from campaigns.outbox.queueing import enqueue_dispatch_on_commit

#: Processed messages that may be sent again (the state machine allows → queued).
REQUEUABLE = [
    s
    for s in sources_of(MessageStatus.QUEUED)
    if s in (MessageStatus.FAILED, MessageStatus.BROKEN, MessageStatus.CANCELLED)
]


def messages_requeue(*, queryset: QuerySet[Message]) -> int:
    """Send the given failed, broken or cancelled messages again (attempts start afresh).
    Messages in any other state are left alone. Returns how many were requeued."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            queryset.filter(status__in=REQUEUABLE)
            .select_for_update(skip_locked=True)
            .values_list("id", "channel_id")
        )
        ids = [row_id for row_id, _ in rows]
        Message.objects.filter(id__in=ids).update(
            status=MessageStatus.QUEUED,
            attempts=0,
            next_attempt_at=now,
            status_reason="",
            lease_until=now + dt.timedelta(seconds=app_settings.QUEUED_TIMEOUT),
            updated_at=now,
        )
        by_channel: dict[int, list[int]] = defaultdict(list)
        for row_id, channel_id in rows:
            by_channel[channel_id].append(row_id)
        enqueue_dispatch_on_commit(by_channel)
    return len(ids)


def failed_messages_requeue(*, since: dt.timedelta) -> int:
    """``retry_failed --since 8d``: requeue messages that failed within ``since``."""
    cutoff = timezone.now() - since
    return messages_requeue(
        queryset=Message.objects.filter(status=MessageStatus.FAILED, updated_at__gte=cutoff)
    )


#: Messages a person may cancel: not yet processed, and not being sent right now.
CANCELLABLE = [s for s in sources_of(MessageStatus.CANCELLED) if s != MessageStatus.SENDING]


def messages_cancel(*, queryset: QuerySet[Message], reason: str = "cancelled") -> int:
    """Cancel messages not yet processed (a message being sent right now is not stopped)."""
    return queryset.filter(status__in=CANCELLABLE).update(
        status=MessageStatus.CANCELLED,
        status_reason=reason,
        next_attempt_at=None,
        lease_until=None,
        updated_at=timezone.now(),
    )


# --- selectors ---------------------------------------------------------------------------------


def messages_for_user(user) -> QuerySet[Message]:
    """A user's messages, newest first (``user.notifications`` holds the same)."""
    return Message.objects.filter(user=user).order_by("-created_at", "-id")


def messages_for_content(obj: models.Model) -> QuerySet[Message]:
    """Messages about ``obj``: as their content, or among their related objects."""
    content_type = ContentType.objects.get_for_model(obj)
    related = MessageRelatedObject.objects.filter(
        content_type=content_type, object_id=str(obj.pk)
    ).values("message_id")
    return Message.objects.filter(
        Q(content_type=content_type, object_id=str(obj.pk)) | Q(pk__in=related)
    ).order_by("-created_at", "-id")
