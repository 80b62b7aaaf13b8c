"""The benchmark's only imports of Notifier's internals, so a reorganisation of the code
(``campaigns/services/*`` moving to ``campaigns/outbox/*``, ``campaigns/broadcast/*`` …) is
followed by repointing the imports of this one module.

Everything else in ``campaigns.bench`` uses stable entry points only: the public API
(``campaigns.api.notify``), the models, ``campaigns.conf.app_settings``, the admin's URLs and
the management commands (``manage.py rqworker``).
"""

from __future__ import annotations

import email.policy
from collections.abc import Iterable
from typing import Any

from rq import Queue

from campaigns.broadcast.fanout import campaign_schedule
from campaigns.conf import app_settings
from campaigns.connections import redis_connection as _redis_connection
from campaigns.content import versions
from campaigns.models import Campaign, Template
from campaigns.outbox.dispatch import message_dispatch
from campaigns.outbox.queueing import LANES, ready_clear
from campaigns.outbox.queueing import get_queue as _get_queue
from channels.backends.base import Outgoing
from channels.backends.email import EmailBackend

#: Dotted paths of the backends the benchmark configures channels with.
NULL_BACKEND = "channels.backends.null.NullBackend"
EMAIL_BACKEND = "channels.backends.email.EmailBackend"


def worker_arguments() -> list[str]:
    """``manage.py`` arguments of one worker, as ``scripts/run.sh`` (the README's run command)
    starts it."""
    return [
        "rqworker",
        app_settings.QUEUE,
        app_settings.BULK_QUEUE,
        "default",
        "--worker-class",
        "campaigns.workers.SimpleWorker",
    ]


def queue() -> Queue:
    """The RQ queue of the transactional lane (workers register there)."""
    return _get_queue()


def queues_empty() -> None:
    """Drop every job waiting in Notifier's queues, and the lanes' ready lists."""
    for waiting in queues():
        waiting.empty()
    ready_clear()


def queues() -> list[Queue]:
    """Every queue Notifier's jobs go to (the transactional and the bulk lane)."""
    return [_get_queue(lane) for lane in LANES]


def redis():
    """The Redis client of the queue (and of the send journal and the rate limiter)."""
    return _redis_connection()


def dispatch(message_ids: Iterable[int]) -> dict[str, Any]:
    """Claim, render, send and record one batch in this process: what a dispatch job does."""
    return message_dispatch(message_ids=list(message_ids)).as_dict()


def template_publish(template: Template) -> None:
    """Make a new template sendable: publish its draft as its first version."""
    versions.template_publish(template=template, note="benchmark")


def campaign_start(campaign: Campaign) -> Campaign:
    """What the admin's "Send now" does: schedule a draft; its fan-out begins at once."""
    return campaign_schedule(campaign)


def email_backend(options: dict[str, Any]) -> EmailBackend:
    """An email backend with these channel options (validated as a channel's are), sending
    through SMTP as channels with a host do (no connection is made to build a message)."""
    return EmailBackend(
        channel_key="bench-email", options={"host": "127.0.0.1", "port": 25, **options}
    )


def outgoing(
    *, uuid: str, address: str, subject: str, text: str, html: str, unsubscribe_url: str
) -> Outgoing:
    """One rendered message as dispatch hands it to a backend, with the unsubscribe link
    every notification email carries (its List-Unsubscribe header)."""
    return Outgoing(
        id=1,
        uuid=uuid,
        address=address,
        subject=subject,
        text=text,
        html=html,
        links={"unsubscribe_url": unsubscribe_url},
    )


def email_bytes(backend: EmailBackend, message: Outgoing) -> bytes:
    """The email backend's own build path, down to the bytes an SMTP server receives: with
    the SMTP policy (CRLF line ends), as Django's SMTP backend sends them."""
    return backend.build(message).message(policy=email.policy.SMTP).as_bytes()
