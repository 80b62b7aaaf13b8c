"""Provider feedback, normalised: whatever a provider says about a sent message (an ESP's
tracking event through django-anymail, a Twilio status callback, an Expo push receipt)
becomes one ``DeliveryEvent``, which the domain applies with one service.

A module per provider turns the provider's words into events; it checks the provider's
signature first (``WebhookForbidden``: nothing may change) and knows nothing of messages,
opt-outs or addresses in the database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

#: What a provider can say about a message after it was sent.
STATUSES = frozenset(
    {
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "bounced",
        "complained",
        "opened",
        "clicked",
        "unsubscribed",
        "deferred",
        "rejected",
        "read",
        "cancelled",
        "unknown",
    }
)


class WebhookNotFound(Exception):
    """No channel of the provider's kind has this key: the hook answers 404."""


class WebhookForbidden(Exception):
    """The request is not signed by the provider: the hook answers 403, nothing changes."""


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One thing a provider said about one sent message.

    - ``channel_key``: the channel the callback came for ("" when the provider does not say,
      as with an ESP's events: the provider id alone names the message);
    - ``provider_id``: the id the provider gave the message when it was sent;
    - ``status``: one of ``STATUSES``; ``reason``: the provider's code and words;
    - ``address_dead``: the number or token is dead: the domain deactivates the address;
    - ``suppress``: a hard bounce or a complaint: the domain opts the message's own address
      out of the channel;
    - ``at``: when it happened, as the provider says (None: now);
    - ``esp``: the provider's name; ``raw_type``: its own word for the status;
    - ``address``: the recipient the provider names, when it names one. It is never the
      address acted on: the domain acts on the message's own address, and ignores an event
      whose ``address`` disagrees with it.
    """

    channel_key: str
    provider_id: str
    status: str
    reason: str = ""
    address_dead: bool = False
    suppress: bool = False
    at: dt.datetime | None = None
    esp: str = ""
    raw_type: str = ""
    address: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(
                f"delivery status {self.status!r} is not one of {', '.join(sorted(STATUSES))}"
            )
        if self.at is not None and self.at.tzinfo is None:
            raise ValueError(f"the time of a delivery event must be aware, got {self.at}")
