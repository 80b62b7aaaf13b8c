"""Helpers for backend tests: a channel, an event with a template on it, and a dispatch of
what notify() wrote (the same service the RQ job runs, called in-process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.utils import timezone

from campaigns.api import notify
from campaigns.models import Message
from campaigns.outbox.dispatch import message_dispatch
from channels.models import ChannelConfig
from tests import factories
from tests.channels.fakes import FakeServer


def channel_with_event(
    *, key: str, backend: str, config: dict, event_key: str = "order-shipped"
) -> ChannelConfig:
    """A channel, and an event with an English template on it."""
    channel = factories.ChannelFactory(key=key, name=key, backend=backend, config=config)
    event = factories.EventFactory(
        key=event_key,
        variables=[{"name": "order_id", "label": "Order", "sample": "A-1"}],
    )
    factories.TemplateFactory(
        event=event,
        channel=channel,
        subject="Order {{ order_id }} shipped",
        text_body="Hello {{ recipient.name }}, order {{ order_id }} is on its way.",
        html_body="<p>Order <b>{{ order_id }}</b></p>",
    )
    return channel


def notify_and_dispatch(
    channel: ChannelConfig, recipients, *, order_id: str = "A-7", **options
) -> list[Message]:
    """notify() on one channel, then dispatch its messages in-process; the rows, reloaded."""
    result = notify(
        "order-shipped", recipients, {"order_id": order_id}, channels=[channel.key], **options
    )
    ids = [m.pk for m in result.messages]
    message_dispatch(message_ids=ids)
    return list(Message.objects.filter(pk__in=ids).order_by("pk"))


def dispatch_again(messages: list[Message]) -> list[Message]:
    """Make waiting messages due now and dispatch them again (what the sweep would do)."""
    ids = [m.pk for m in messages]
    Message.objects.filter(pk__in=ids, status="retrying").update(next_attempt_at=timezone.now())
    message_dispatch(message_ids=ids)
    return list(Message.objects.filter(pk__in=ids).order_by("pk"))


@pytest.fixture
def serve() -> Iterator:
    """Start fake provider servers for the test: ``serve(handler) -> FakeServer``."""
    servers: list[FakeServer] = []

    def start(handler) -> FakeServer:
        server = FakeServer(handler).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
