"""The channel handler keeps one open backend per channel and thread: reused from batch to
batch (one TCP connection at the provider), rebuilt when the channel's row changes, closed by
``close_all()`` or ``discard()``."""

from __future__ import annotations

import threading
import uuid

import pytest

from channels.backends.base import ConfigurationError, Outgoing, TransientError
from channels.handler import ChannelHandler
from channels.models import ChannelConfig
from channels.registry import UnknownBackend

from ..conftest import free_port
from .fakes import json_reply

SECRET = "whsec-0123456789abcdef"


@pytest.fixture
def receiver(serve):
    return serve(lambda request: json_reply(200, {"id": f"rcv-{len(request.body)}"}))


@pytest.fixture
def handler():
    handler = ChannelHandler()
    yield handler
    handler.close_all()


def webhook_channel(server, key="hooks") -> ChannelConfig:
    return ChannelConfig.objects.create(
        key=key,
        name=key,
        backend="webhook",
        config={"url": f"{server.url}/hook", "secret": SECRET},
    )


def batch(backend, size=2) -> list:
    messages = [
        Outgoing(id=n, uuid=str(uuid.uuid4()), address=str(n), text="hi") for n in range(size)
    ]
    return list(backend.send(messages))


def test_one_backend_serves_every_batch_over_one_connection(receiver, handler, db):
    channel = webhook_channel(receiver)

    first = handler[channel]
    assert all(result.ok for result in batch(first))
    reloaded = ChannelConfig.objects.get(pk=channel.pk)  # the next batch reads the row again
    second = handler[reloaded]
    assert all(result.ok for result in batch(second))

    assert second is first and len(handler) == 1
    assert len(receiver.requests) == 4 and receiver.connections == 1


def test_a_changed_channel_gets_a_new_backend_and_the_old_one_is_closed(
    receiver, serve, handler, db
):
    channel = webhook_channel(receiver)
    old = handler[channel]
    batch(old, 1)
    elsewhere = serve(lambda request: json_reply(200, {"id": "moved"}))

    channel.config = {**channel.config, "url": f"{elsewhere.url}/hook"}
    channel.save()
    new = handler[channel]
    results = batch(new, 1)

    assert new is not old and old.client is None  # closed
    assert [r.provider_id for r in results] == ["moved"]
    assert (len(receiver.requests), len(elsewhere.requests)) == (1, 1)


def test_a_row_saved_again_is_a_new_version(receiver, handler, db):
    channel = webhook_channel(receiver)
    old = handler[channel]
    channel.name = "Hooks (renamed)"
    channel.save()  # updated_at moves: the operator may have changed what we cannot see

    assert handler[channel] is not old and old.client is None


def test_close_all_closes_every_backend_of_the_thread(receiver, handler, db):
    one, two = webhook_channel(receiver, "one"), webhook_channel(receiver, "two")
    opened = [handler[one], handler[two]]

    handler.close_all()

    assert [backend.client for backend in opened] == [None, None] and len(handler) == 0
    assert handler[one] is not opened[0]


def test_discard_forgets_a_backend_whose_connection_failed(receiver, handler, db):
    channel = webhook_channel(receiver)
    old = handler[channel]

    handler.discard(channel)
    handler.discard(channel)  # nothing kept: nothing to do

    assert old.client is None and handler[channel] is not old


def test_each_thread_has_backends_of_its_own(receiver, handler, db):
    channel = webhook_channel(receiver)
    mine = handler[channel]
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(handler[channel]))
    thread.start()
    thread.join()

    assert theirs[0] is not mine and handler[channel] is mine
    theirs[0].close()


def test_a_backend_that_cannot_be_built_or_opened_is_not_kept(handler, db):
    unknown = ChannelConfig.objects.create(key="gone", name="gone", backend="nowhere.Backend")
    broken = ChannelConfig.objects.create(
        key="broken", name="broken", backend="webhook", config={"url": "https://x.example"}
    )
    down = ChannelConfig.objects.create(
        key="mail",
        name="mail",
        backend="email",
        config={"host": "127.0.0.1", "port": free_port(), "timeout": 1},
    )

    with pytest.raises(UnknownBackend):
        handler[unknown]
    with pytest.raises(ConfigurationError, match="secret"):
        handler[broken]
    with pytest.raises(TransientError, match=r"SMTP connection to 127\.0\.0\.1"):
        handler[down]
    assert [handler.get(c) for c in (unknown, broken, down)] == [None, None, None]
    assert len(handler) == 0
