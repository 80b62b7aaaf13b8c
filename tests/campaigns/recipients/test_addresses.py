"""A user's addresses per channel, and dead addresses deactivated by provider answers."""

from __future__ import annotations

import pytest

from campaigns.api import notify
from campaigns.models import ChannelAddress, Message
from campaigns.outbox.dispatch import message_dispatch
from tests import factories

CONTEXT = {"order_id": "A-1"}


@pytest.fixture
def push(db):
    channel = factories.ChannelFactory(key="push", backend="tests.notify_app.backends.TokenBackend")
    factories.TemplateFactory(channel=channel, event__key="order-shipped")
    return channel


def test_a_users_addresses_fill_the_recipient(push, django_user_model):
    ann = django_user_model.objects.create_user("ann", "ann@example.com")
    ChannelAddress.objects.create(user=ann, kind="push_token", address="tok-old", is_verified=False)
    ChannelAddress.objects.create(user=ann, kind="push_token", address="tok-1", is_verified=True)
    (message,) = notify("order-shipped", ann, CONTEXT).messages
    assert message.address == "tok-1"  # verified first


def test_inactive_addresses_get_nothing(push, django_user_model):
    ann = django_user_model.objects.create_user("ann", "ann@example.com")
    ChannelAddress.objects.create(user=ann, kind="push_token", address="tok-1", is_active=False)
    result = notify(
        "order-shipped", [ann, {"push_token": "tok-1"}, {"push_token": "tok-2"}], CONTEXT
    )
    assert [m.address for m in result.messages] == ["tok-2"]
    assert [s.reason for s in result.skipped] == ["no address", "inactive address"]


def test_a_dead_address_fails_and_is_deactivated(push, django_user_model):
    ann = django_user_model.objects.create_user("ann", "ann@example.com")
    ChannelAddress.objects.create(user=ann, kind="push_token", address="dead-1")
    result = notify("order-shipped", [ann, {"push_token": "dead-2"}, {"push_token": "ok"}], CONTEXT)
    message_dispatch(message_ids=[m.pk for m in result.messages])

    rows = dict(Message.objects.values_list("address", "status"))
    assert rows == {"dead-1": "failed", "dead-2": "failed", "ok": "sent"}
    assert "DeviceNotRegistered" in Message.objects.get(address="dead-2").last_error
    inactive = ChannelAddress.objects.filter(is_active=False)
    assert sorted(inactive.values_list("address", "user_id")) == [
        ("dead-1", ann.pk),
        ("dead-2", None),
    ]
    again = notify("order-shipped", [ann, {"push_token": "dead-2"}], CONTEXT)
    assert again.messages == []
    assert [s.reason for s in again.skipped] == ["no address", "inactive address"]


def test_a_users_profile_gives_language_and_timezone(db, django_user_model):
    from campaigns.models import RecipientProfile

    channel = factories.memory_channel()
    event = factories.EventFactory(key="order-shipped")
    for language in ("en", "de"):
        factories.TemplateFactory(event=event, channel=channel, language=language)
    ann = django_user_model.objects.create_user("ann", "ann@example.com")
    RecipientProfile.objects.create(user=ann, timezone="Europe/Berlin", language="DE")
    (message,) = notify("order-shipped", ann, CONTEXT).messages
    assert (message.language, message.recipient["tz"]) == ("de", "Europe/Berlin")
    (explicit,) = notify("order-shipped", {"user_id": ann.pk, "language": "en"}, CONTEXT).messages
    assert explicit.language == "en"  # what the caller says wins
