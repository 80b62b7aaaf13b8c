"""Twilio status callbacks become delivery events once their signature checks out. The
tests sign as Twilio's docs describe it, implemented here on their own: HMAC-SHA1 keyed with
the Auth Token over the public URL and the POST parameters sorted by name (name and value
concatenated), base64."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from channels.models import ChannelConfig
from channels.webhooks.base import WebhookForbidden, WebhookNotFound
from channels.webhooks.twilio import callback_urls, twilio_signature_valid, twilio_status_event

AUTH_TOKEN = "twilio-auth-token-0001"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
URL = "https://notify.example.com/hooks/twilio/sms/status/"


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def callback(status: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": "SM" + "1" * 32,
        "SmsSid": "SM" + "1" * 32,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": ACCOUNT_SID,
        "To": "+4915112345678",
        "From": "+15005550006",
        "ApiVersion": "2010-04-01",
        **extra,
    }


@pytest.fixture
def channel(db) -> ChannelConfig:
    return ChannelConfig.objects.create(
        key="sms",
        name="SMS",
        backend="sms.twilio",
        config={
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": "+15005550006",
        },
    )


def event_for(channel, params, signature, urls=(URL,)):
    listed = {name: [value] for name, value in params.items()}
    return twilio_status_event(channel=channel, urls=urls, params=listed, signature=signature)


def test_a_signed_callback_becomes_a_delivery_event(channel):
    params = callback("delivered")

    event = event_for(channel, params, sign(URL, params))

    assert (event.channel_key, event.provider_id, event.status) == (
        "sms",
        "SM" + "1" * 32,
        "delivered",
    )
    assert (event.reason, event.address_dead, event.esp, event.raw_type) == (
        "",
        False,
        "twilio",
        "delivered",
    )


@pytest.mark.parametrize(
    ("twilio_status", "status"),
    [("accepted", "queued"), ("sent", "sent"), ("read", "read"), ("canceled", "cancelled")],
)
def test_twilios_words_map_onto_delivery_statuses(channel, twilio_status, status):
    params = callback(twilio_status)
    assert event_for(channel, params, sign(URL, params)).status == status


def test_an_unknown_handset_makes_the_number_dead(channel):
    params = callback("undelivered", ErrorCode="30005", ErrorMessage="Unknown destination")

    event = event_for(channel, params, sign(URL, params))

    assert (event.status, event.address_dead) == ("undelivered", True)
    assert event.reason == (
        "Twilio undelivered: error 30005: Unknown destination "
        "(https://www.twilio.com/docs/errors/30005)"
    )


def test_an_unreachable_handset_keeps_its_number(channel):
    params = callback("undelivered", ErrorCode="30003")
    event = event_for(channel, params, sign(URL, params))
    assert (event.status, event.address_dead) == ("undelivered", False)
    assert "30003" in event.reason


def test_inbound_statuses_say_nothing_about_a_sent_message(channel):
    params = callback("received")
    assert event_for(channel, params, sign(URL, params)) is None


def test_twilio_may_sign_the_url_with_its_default_port(channel):
    params = callback("sent")
    signed = sign("https://notify.example.com:443/hooks/twilio/sms/status/", params)
    assert event_for(channel, params, signed).status == "sent"


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "not-a-signature",
        sign(URL, callback("delivered"), token="another-auth-token"),
        sign("http://testserver/hooks/twilio/sms/status/", callback("delivered")),
        sign(URL, callback("undelivered")),  # a tampered status
    ],
)
def test_a_bad_signature_is_forbidden(channel, signature):
    with pytest.raises(WebhookForbidden):
        event_for(channel, callback("delivered"), signature)


def test_a_channel_whose_backend_takes_no_twilio_callbacks_is_not_found(db):
    mail = ChannelConfig.objects.create(key="mail", name="Mail", backend="locmem")
    gone = ChannelConfig.objects.create(key="gone", name="Gone", backend="nowhere.Backend")
    params = callback("delivered")
    for channel in (mail, gone):
        with pytest.raises(WebhookNotFound):
            event_for(channel, params, sign(URL, params))


def test_the_documented_example_of_twilio():
    # Twilio's "Secure webhooks" page: auth token 12345.
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    listed = {name: [value] for name, value in params.items()}
    assert twilio_signature_valid(
        auth_token="12345", urls=[url], params=listed, signature="0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )
    assert not twilio_signature_valid(
        auth_token="", urls=[url], params=listed, signature="0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )


def test_the_urls_twilio_may_have_called(channel, settings):
    settings.SITE_URL = "https://notify.example.com/"
    path = "/hooks/twilio/sms/status/?x=1"
    assert callback_urls(channel=channel, path=path) == ["https://notify.example.com" + path]
    channel.config = {**channel.config, "status_callback": "https://proxy.example.com/t"}
    assert callback_urls(channel=channel, path=path) == [
        "https://notify.example.com" + path,
        "https://proxy.example.com/t",
    ]
    settings.SITE_URL = ""
    assert callback_urls(channel=channel, path=path) == ["https://proxy.example.com/t"]
