from campaigns.domain.states import MessageStatus
from campaigns.models.addresses import ChannelAddress
from campaigns.models.availability import AvailabilityWindow
from campaigns.models.campaigns import (
    Audience,
    AudienceKind,
    Campaign,
    CampaignChunk,
    CampaignStatus,
    Contact,
)
from campaigns.models.decisions import Decision
from campaigns.models.digests import DigestItem, DigestPreference
from campaigns.models.events import EscalationStep, Event
from campaigns.models.messages import Message, MessageAttempt, MessageRelatedObject, NotifyRequest
from campaigns.models.optouts import OptOut
from campaigns.models.profiles import RecipientProfile
from campaigns.models.retention import MessageDayCount
from campaigns.models.servicekeys import ServiceKey
from campaigns.models.templates import (
    Layout,
    LayoutVersion,
    Partial,
    Template,
    TemplateVersion,
)
from campaigns.models.tokens import ApiToken
from campaigns.models.webhooks import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEventType,
)

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
    "Decision",
    "DigestItem",
    "DigestPreference",
    "EscalationStep",
    "Event",
    "Layout",
    "LayoutVersion",
    "Message",
    "MessageAttempt",
    "MessageDayCount",
    "MessageRelatedObject",
    "MessageStatus",
    "NotifyRequest",
    "OptOut",
    "Partial",
    "RecipientProfile",
    "ServiceKey",
    "Template",
    "TemplateVersion",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookEndpoint",
    "WebhookEventType",
]
