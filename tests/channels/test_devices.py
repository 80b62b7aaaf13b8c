"""Every device (README "Every device"): a person with several active addresses of one kind
gets a message on each, the newest, or the best one, as the channel's ``devices`` setting
says; each device has its own Message row, and a dead one is deactivated alone. Against the
fake Web Push service and the fake Twilio API on 127.0.0.1, with a real RQ worker."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.api import notify
from campaigns.models import ChannelAddress, Message, MessageStatus
from campaigns.outbox.catalog import catalog, catalog_settled
from channels.models import ChannelConfig, Devices

from .. import factories
from ..campaigns.outbox.test_notify import NOTIFY_QUERIES
from .backends.test_twilio import FakeTwilio, twilio_channel
from .backends.test_webpush import push, subscriber, webpush_channel  # noqa: F401 - a fixture
from .conftest import notify_and_dispatch


def browsers(service, user, names: list[str], *, verified: str = "") -> list:
    """Subscriptions of ``user``'s browsers, the last the newest."""
    subscribers = []
    start = timezone.now() - dt.timedelta(hours=len(names))
    for index, name in enumerate(names):
        sub = subscriber(service, name)
        address = ChannelAddress.objects.create(
            user=user, kind="webpush", address=sub.json, is_verified=name == verified
        )
        # updated_at is auto_now: set when each browser last registered, oldest first
        ChannelAddress.objects.filter(pk=address.pk).update(
            updated_at=start + dt.timedelta(hours=index)
        )
        subscribers.append(sub)
    return subscribers


@pytest.mark.django_db(transaction=True)
def test_three_browsers_each_get_the_push_with_setting_all(push, run_worker):  # noqa: F811
    webpush_channel()
    from_db = devices_set("browser", Devices.ALL)
    user = factories.UserFactory(first_name="Ann")
    browsers(push, user, ["laptop", "phone", "tablet"])

    result = notify("order-shipped", user, {"order_id": "A-7"}, channels=[from_db.key])
    assert len(result.messages) == 3
    assert run_worker() >= 1

    messages = list(Message.objects.order_by("pk"))
    assert [m.status for m in messages] == [MessageStatus.SENT] * 3, [
        m.last_error for m in messages
    ]
    assert len({m.address for m in messages}) == 3
    assert sorted(d.subscriber for d in push.fake.delivered) == ["laptop", "phone", "tablet"]
    assert {d.payload["body"] for d in push.fake.delivered} == {
        "Hello Ann, order A-7 is on its way."
    }


def devices_set(key: str, devices: str) -> ChannelConfig:
    """Set a channel's devices setting, as the admin saves it."""
    channel = ChannelConfig.objects.get(key=key)
    channel.devices = devices
    channel.save(update_fields=["devices"])
    return channel


def test_newest_sends_to_the_newest_browser_and_best_to_the_verified_one(push, db):  # noqa: F811
    channel = webpush_channel()
    user = factories.UserFactory()
    browsers(push, user, ["old", "verified", "newest"], verified="verified")

    (message,) = notify_and_dispatch(channel, user)  # the default: the best one
    assert message.status == MessageStatus.SENT
    assert [d.subscriber for d in push.fake.delivered] == ["verified"]

    devices_set("browser", Devices.NEWEST)
    (message,) = notify_and_dispatch(channel, user)
    assert message.status == MessageStatus.SENT
    assert [d.subscriber for d in push.fake.delivered] == ["verified", "newest"]


def test_a_gone_browser_is_deactivated_and_the_others_still_get_theirs(push, db):  # noqa: F811
    channel = webpush_channel()
    devices_set("browser", Devices.ALL)
    user = factories.UserFactory()
    laptop, gone, tablet = browsers(push, user, ["laptop", "gone", "tablet"])
    gone.unsubscribed = True  # the push service answers 410 Gone

    messages = notify_and_dispatch(channel, user)

    by_address = {m.address: m for m in messages}
    assert by_address[gone.json].status == MessageStatus.FAILED
    assert "410" in by_address[gone.json].last_error
    assert by_address[laptop.json].status == by_address[tablet.json].status == MessageStatus.SENT
    assert sorted(d.subscriber for d in push.fake.delivered) == ["laptop", "tablet"]
    states = dict(ChannelAddress.objects.values_list("address", "is_active"))
    assert states == {laptop.json: True, gone.json: False, tablet.json: True}

    again = notify_and_dispatch(channel, user)  # the dead one is no device any more
    assert len(again) == 2
    assert sorted(d.subscriber for d in push.fake.delivered) == [
        "laptop",
        "laptop",
        "tablet",
        "tablet",
    ]


@pytest.fixture
def twilio(serve):
    return serve(FakeTwilio())


def test_two_phones_get_two_sms(twilio, db):
    channel = twilio_channel(twilio)
    devices_set("sms", Devices.ALL)
    user = factories.UserFactory()
    ChannelAddress.objects.create(user=user, kind="phone", address="+4915112345678")
    ChannelAddress.objects.create(user=user, kind="phone", address="+4915187654321")

    messages = notify_and_dispatch(channel, user)

    assert [m.status for m in messages] == [MessageStatus.SENT] * 2
    assert sorted(r.form()["To"] for r in twilio.requests) == ["+4915112345678", "+4915187654321"]
    assert len({m.provider_id for m in messages}) == 2


def test_a_phone_given_by_the_call_is_the_only_one(twilio, db):
    """The devices setting spreads the user's own addresses; an address the call names is
    where that message goes."""
    channel = twilio_channel(twilio)
    devices_set("sms", Devices.ALL)
    user = factories.UserFactory()
    ChannelAddress.objects.create(user=user, kind="phone", address="+4915112345678")
    ChannelAddress.objects.create(user=user, kind="phone", address="+4915187654321")

    (message,) = notify_and_dispatch(channel, {"user_id": user.pk, "phone": "+4915100000001"})
    assert message.address == "+4915100000001"


def test_every_device_keeps_its_own_trigger_key(twilio, db):
    """With trigger_once, each phone has its own key: both are written, and a second trigger
    is refused on both."""
    twilio_channel(twilio)
    devices_set("sms", Devices.ALL)
    user = factories.UserFactory()
    ChannelAddress.objects.create(user=user, kind="phone", address="+4915112345678")
    ChannelAddress.objects.create(user=user, kind="phone", address="+4915187654321")

    first = notify(
        "order-shipped", user, {"order_id": "1"}, channels=["sms"], trigger="trigger_once"
    )
    again = notify(
        "order-shipped", user, {"order_id": "1"}, channels=["sms"], trigger="trigger_once"
    )

    assert len(first.messages) == 2 and len({m.dedupe_key for m in first.messages}) == 2
    assert again.messages == [] and [s.reason for s in again.skipped] == ["duplicate"] * 2


def test_all_with_one_address_costs_what_one_address_costs(twilio, db, django_assert_num_queries):
    twilio_channel(twilio)
    devices_set("sms", Devices.ALL)
    user = factories.UserFactory()
    ChannelAddress.objects.create(user=user, kind="phone", address="+4915112345678")
    catalog_settled()  # as if the setup had committed: the catalog is read, then kept
    catalog()
    notify("order-shipped", user, {"order_id": "0"}, channels=["sms"])  # catalog read and kept
    with django_assert_num_queries(NOTIFY_QUERIES[1]):
        (message,) = notify("order-shipped", user, {"order_id": "1"}, channels=["sms"]).messages
    assert message.address == "+4915112345678"
