"""Pause, resume and cancel a campaign. Each updates the campaign row first, so it waits for
the chunk transactions in flight (they hold it ``FOR SHARE``) and every later chunk sees it;
a dispatch batch sending the campaign's messages reads its state before each message (at most
every 0.2 s) and stops."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from campaigns.exceptions import CampaignError
from campaigns.models import Campaign, CampaignChunk, CampaignStatus, Message, MessageStatus
from campaigns.models.campaigns import ChunkStatus
from campaigns.outbox.queueing import chunks_after_commit
from campaigns.outbox.transitions import messages_move, messages_queue

#: Messages a pause holds and a cancel stops: everything not yet claimed by a worker.
_HOLDABLE = [
    MessageStatus.PENDING,
    MessageStatus.SCHEDULED,
    MessageStatus.QUEUED,
    MessageStatus.RETRYING,
]


def campaign_pause(campaign: Campaign, *, reason: str = "") -> int:
    """Hold a running campaign: pending chunks wait, unsent messages become ``paused``
    (a batch already sending stops at its next message). Returns the messages held."""
    now = timezone.now()
    with transaction.atomic():
        updated = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.RUNNING).update(
            status=CampaignStatus.PAUSED, status_reason=reason, updated_at=now
        )
        if not updated:
            raise CampaignError(
                f"Only a running campaign can be paused; this one is {campaign.status}."
            )
        held = messages_move(
            Message.objects.filter(campaign=campaign, status__in=_HOLDABLE),
            to=MessageStatus.PAUSED,
            now=now,
            lease_until=None,
        )
    campaign.status, campaign.status_reason = CampaignStatus.PAUSED, reason
    return held


def campaign_resume(campaign: Campaign) -> int:
    """Let a paused campaign go on: due messages are queued again, later ones wait for their
    time, and pending chunks are enqueued. Returns the messages queued now."""
    now = timezone.now()
    with transaction.atomic():
        updated = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.PAUSED).update(
            status=CampaignStatus.RUNNING, status_reason="", updated_at=now
        )
        if not updated:
            raise CampaignError(
                f"Only a paused campaign can be resumed; this one is {campaign.status}."
            )
        paused = Message.objects.filter(campaign=campaign, status=MessageStatus.PAUSED)
        messages_move(paused.filter(next_attempt_at__gt=now), to=MessageStatus.SCHEDULED, now=now)
        queued = messages_queue(paused, now=now)
        pending = list(
            CampaignChunk.objects.filter(campaign=campaign, status=ChunkStatus.PENDING).values_list(
                "pk", flat=True
            )
        )
        CampaignChunk.objects.filter(pk__in=pending).update(enqueued_at=now)
        chunks_after_commit(pending)
    campaign.status, campaign.status_reason = CampaignStatus.RUNNING, ""
    return len(queued)


@dataclass(frozen=True, slots=True)
class CancelResult:
    stopped: int  # messages that will not be sent
    #: Messages a worker was sending when the cancel came: each batch stops at its next
    #: message (it checks its campaign's state at most every 0.2 s); the campaign's panel
    #: shows them until none is left (``campaign_sending``).
    sending: int


def campaign_cancel(campaign: Campaign) -> CancelResult:
    """Stop a campaign for good: pending chunks and unsent messages are cancelled; sent ones
    stay. Answers at once: batches sending the campaign's messages stop at their next one, and
    ``campaign_sending()`` says how many are still in a worker's hands."""
    now = timezone.now()
    with transaction.atomic():
        updated = Campaign.objects.filter(
            pk=campaign.pk,
            status__in=[CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED],
        ).update(status=CampaignStatus.CANCELLED, cancelled_at=now, updated_at=now)
        if not updated:
            raise CampaignError(f"This campaign is {campaign.status}: there is nothing to cancel.")
        stopped = messages_move(
            Message.objects.filter(
                campaign=campaign, status__in=[*_HOLDABLE, MessageStatus.PAUSED]
            ),
            to=MessageStatus.CANCELLED,
            now=now,
            status_reason="campaign cancelled",
            next_attempt_at=None,
            lease_until=None,
        )
        CampaignChunk.objects.filter(campaign=campaign, status=ChunkStatus.PENDING).update(
            status=ChunkStatus.CANCELLED
        )
    campaign.status = CampaignStatus.CANCELLED
    return CancelResult(stopped=stopped, sending=campaign_sending(campaign))


def campaign_sending(campaign: Campaign) -> int:
    """How many of the campaign's messages a worker is sending right now."""
    return Message.objects.filter(campaign=campaign, status=MessageStatus.SENDING).count()
