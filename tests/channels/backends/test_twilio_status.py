"""Twilio's message status callbacks: the backend asks for them (``StatusCallback``), and
Twilio's signed POSTs to ``/hooks/twilio/<channel>/status/`` update the message's delivery
status. The tests sign requests as Twilio documents it, implemented here on their own
(HMAC-SHA1 keyed with the Auth Token over the public URL + the POST parameters sorted by
name, name and value concatenated; base64), and post them over real HTTP: through Django's
test client, and from the fake Twilio to a live server."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

import httpx
import pytest

from campaigns.api import notify
from campaigns.models import ChannelAddress, Message, MessageStatus
from channels.webhooks.twilio import twilio_signature_valid

from ... import factories
from ..conftest import notify_and_dispatch
from .test_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, twilio_channel

SITE = "https://notify.example.com"
HOOK = "/hooks/twilio/sms/status/"


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature, as Twilio's docs describe computing it."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(
        hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    ).decode()


def callback(sid: str, status: str, **extra: str) -> dict[str, str]:
    """The parameters of a status callback, as Twilio posts them."""
    return {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": "+4915112345678",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": "+15005550006",
        "ApiVersion": "2010-04-01",
        **extra,
    }


@pytest.fixture
def twilio(serve):
    return serve(FakeTwilio())


@pytest.fixture
def site(settings):
    settings.SITE_URL = SITE
    return SITE


def post(client, params: dict[str, str], *, signature: str | None, path: str = HOOK):
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    return client.post(
        path,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers=headers,
    )


def sent_sms(twilio, **config) -> Message:
    channel = twilio_channel(twilio, **config)
    user = factories.UserFactory()
    ChannelAddress.objects.create(user=user, kind="phone", address="+4915112345678")
    (message,) = notify_and_dispatch(channel, user)
    assert message.status == MessageStatus.SENT
    return message


def test_the_signature_matches_twilios_documented_example():
    # The example of Twilio's "Secure webhooks" page: auth token 12345.
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert sign(url, params, "12345") == expected
    listed = {name: [value] for name, value in params.items()}
    assert twilio_signature_valid(auth_token="12345", urls=[url], params=listed, signature=expected)
    # Twilio may sign the URL with or without the default port.
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert twilio_signature_valid(
        auth_token="12345", urls=[url], params=listed, signature=sign(with_port, params, "12345")
    )
    assert not twilio_signature_valid(
        auth_token="12345", urls=[url], params=listed, signature=sign(url, params, "54321")
    )


def test_messages_ask_for_status_callbacks_at_the_sites_hook(twilio, site, db):
    channel = twilio_channel(twilio)

    notify_and_dispatch(channel, {"phone": "+4915112345678"})

    assert twilio.requests[0].form()["StatusCallback"] == SITE + HOOK


def test_status_callbacks_can_be_turned_off(twilio, site, db):
    channel = twilio_channel(twilio, track_delivery="off")

    notify_and_dispatch(channel, {"phone": "+4915112345678"})

    assert "StatusCallback" not in twilio.requests[0].form()


def test_signed_callbacks_move_the_delivery_status_forward_only(twilio, site, client, db):
    message = sent_sms(twilio)
    sid = message.provider_id

    for status, expected in [
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("sent", "delivered"),  # a late "sent" does not undo "delivered"
        ("queued", "delivered"),
        ("undelivered", "delivered"),  # nor does another final status
        ("read", "read"),
        ("delivered", "read"),
    ]:
        params = callback(sid, status)
        response = post(client, params, signature=sign(SITE + HOOK, params))
        assert response.status_code == 204, (status, response.content)
        message.refresh_from_db()
        assert message.delivery_status == expected, status
    assert message.status == MessageStatus.SENT and message.delivery_updated_at


@pytest.mark.parametrize(
    "forgery", ["missing", "empty", "garbage", "wrong-token", "internal-url", "other-channel"]
)
def test_a_bad_signature_is_refused_and_changes_nothing(twilio, site, client, db, forgery):
    message = sent_sms(twilio)
    params = callback(message.provider_id, "undelivered", ErrorCode="30005")
    signature = {
        "missing": None,
        "empty": "",
        "garbage": "not-a-signature",
        "wrong-token": sign(SITE + HOOK, params, token="another-auth-token"),
        # Signed for the URL the request reached the process at, not the public one.
        "internal-url": sign("http://testserver" + HOOK, params),
        "other-channel": sign(SITE + "/hooks/twilio/sms-2/status/", params),
    }[forgery]

    response = post(client, params, signature=signature)

    assert response.status_code == 403
    message.refresh_from_db()
    assert (message.delivery_status, message.status_reason) == ("", "")
    assert ChannelAddress.objects.get(address="+4915112345678").is_active


def test_a_tampered_parameter_breaks_the_signature(twilio, site, client, db):
    message = sent_sms(twilio)
    params = callback(message.provider_id, "delivered")
    signature = sign(SITE + HOOK, params)

    response = post(client, params | {"MessageStatus": "undelivered"}, signature=signature)

    assert response.status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == ""


def test_unknown_channels_and_other_methods(twilio, site, client, db):
    sent_sms(twilio)
    factories.ChannelFactory(key="mail", backend="locmem")
    params = callback("SM1", "delivered")

    for key in ("nope", "mail"):
        path = f"/hooks/twilio/{key}/status/"
        assert (
            post(client, params, signature=sign(SITE + path, params), path=path).status_code == 404
        )
    assert client.get(HOOK).status_code == 405
    # A signed callback about a message we do not know: accepted, nothing to change.
    unknown = callback("SM" + "f" * 32, "delivered")
    assert post(client, unknown, signature=sign(SITE + HOOK, unknown)).status_code == 204


def test_a_dead_number_is_deactivated(twilio, site, client, db):
    message = sent_sms(twilio)
    params = callback(message.provider_id, "undelivered", ErrorCode="30005")

    response = post(client, params, signature=sign(SITE + HOOK, params))

    assert response.status_code == 204
    message.refresh_from_db()
    assert message.delivery_status == "undelivered"
    assert message.status_reason.startswith("Twilio undelivered: error 30005")
    address = ChannelAddress.objects.get(kind="phone", address="+4915112345678")
    assert not address.is_active and "30005" in address.deactivated_reason
    again = notify(
        "order-shipped", {"phone": "+4915112345678"}, {"order_id": "2"}, channels=["sms"]
    )
    assert again.messages == [] and again.skipped[0].reason == "inactive address"


def test_a_temporarily_unreachable_handset_keeps_its_number(twilio, site, client, db):
    message = sent_sms(twilio)
    params = callback(message.provider_id, "undelivered", ErrorCode="30003")

    assert post(client, params, signature=sign(SITE + HOOK, params)).status_code == 204

    message.refresh_from_db()
    assert message.delivery_status == "undelivered" and "30003" in message.status_reason
    assert ChannelAddress.objects.get(address="+4915112345678").is_active


@pytest.mark.django_db(transaction=True)
def test_twilio_posts_the_callback_it_was_given(twilio, run_worker, live_server, settings):
    """notify() → RQ worker → the fake Twilio takes the message and, playing Twilio, posts
    the signed status callback to the StatusCallback URL it was sent: a live server."""
    settings.SITE_URL = live_server.url
    twilio_channel(twilio)
    user = factories.UserFactory()
    ChannelAddress.objects.create(user=user, kind="phone", address="+4915112345678")

    notify("order-shipped", user, {"order_id": "A-7"}, channels=["sms"])
    assert run_worker() == 1

    message = Message.objects.get()
    url = twilio.requests[0].form()["StatusCallback"]
    assert url == live_server.url + HOOK
    for status in ("sent", "delivered"):
        params = callback(message.provider_id, status)
        answer = httpx.post(url, data=params, headers={"X-Twilio-Signature": sign(url, params)})
        assert answer.status_code == 204
    forged = callback(message.provider_id, "failed", ErrorCode="30005")
    answer = httpx.post(url, data=forged, headers={"X-Twilio-Signature": sign(url, {})})
    assert answer.status_code == 403
    message.refresh_from_db()
    assert (message.status, message.delivery_status) == (MessageStatus.SENT, "delivered")
    assert ChannelAddress.objects.get(address="+4915112345678").is_active
