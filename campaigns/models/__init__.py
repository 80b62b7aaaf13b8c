from .addresses import ChannelAddress
from .availability import AvailabilityWindow
from .campaigns import Audience, AudienceKind, Campaign, CampaignChunk, CampaignStatus, Contact
from .events import Event
from .messages import (
    Message,
    MessageAttempt,
    MessageRelatedObject,
    MessageStatus,
    NotifyRequest,
)
from .optouts import OptOut
from .profiles import RecipientProfile
from .templates import Template
from .tokens import ApiToken

__all__ = [
    "ApiToken",
    "Audience",
    "AudienceKind",
    "AvailabilityWindow",
    "Campaign",
    "CampaignChunk",
    "CampaignStatus",
    "ChannelAddress",
    "Contact",
    "Event",
    "Message",
    "MessageAttempt",
    "MessageRelatedObject",
    "MessageStatus",
    "NotifyRequest",
    "OptOut",
    "RecipientProfile",
    "Template",
]
