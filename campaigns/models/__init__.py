from .addresses import ChannelAddress
from .availability import AvailabilityWindow
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
    "AvailabilityWindow",
    "ChannelAddress",
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
