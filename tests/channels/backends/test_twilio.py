"""The Twilio SMS backend against a fake of Twilio's Messages API on 127.0.0.1: it checks
basic auth, the path and the form fields, and answers as Twilio documents (a message resource
with its ``sid``; errors as ``{"code", "message", "more_info", "status"}``)."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import re

import pytest
from django.utils import timezone

from campaigns.api import InvalidRecipient, notify
from campaigns.models import ChannelAddress, Message, MessageStatus
from channels.backends.base import AddressRejected, ConfigurationError
from channels.backends.sms import TwilioSmsBackend

from ... import factories
from ..conftest import channel_with_event, dispatch_again, notify_and_dispatch
from ..fakes import Reply, json_reply

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-auth-token-0001"
SERVICE_SID = "MG" + "fedcba9876543210" * 2
FIELDS = {"To", "From", "MessagingServiceSid", "Body", "StatusCallback"}


def twilio_error(status: int, code: int, message: str, **headers: str) -> Reply:
    return json_reply(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        **headers,
    )


class FakeTwilio:
    """Twilio's Messages resource. Magic numbers, like Twilio's test credentials:
    +15005550001 is invalid (21211), +15005550009 not a mobile number (21614),
    +15005550003 in a region the account may not send to (21408)."""

    def __init__(self):
        self.sids = (f"SM{n:032x}" for n in itertools.count(1))

    def __call__(self, request) -> Reply:
        expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return twilio_error(401, 20003, "Authentication Error - invalid username")
        assert request.method == "POST"
        assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = request.form()
        assert set(form) <= FIELDS, form
        assert ("From" in form) != ("MessagingServiceSid" in form)
        to = form.get("To", "")
        if form.get("From") == "+15005550001":
            return twilio_error(
                400,
                21212,
                "The 'From' number +15005550001 is not a valid phone number, shortcode, "
                "or alphanumeric sender ID.",
            )
        if not re.fullmatch(r"\+[1-9]\d{1,14}", to) or to == "+15005550001":
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to == "+15005550004":
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        if to == "+15005550009":
            return twilio_error(400, 21614, f"'To' number {to} is not a valid mobile number")
        if to == "+15005550003":
            return twilio_error(
                400,
                21408,
                f"Permission to send an SMS has not been enabled for the region "
                f"indicated by the 'To' number: {to}.",
            )
        if not form.get("Body"):
            return twilio_error(400, 21602, "Message body is required.")
        sid = "SM-scripted" if request.scripted else next(self.sids)
        return json_reply(
            201,
            {
                "account_sid": ACCOUNT_SID,
                "api_version": "2010-04-01",
                "body": form["Body"],
                "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_segments": "1",
                "price": None,
                "sid": sid,
                "status": "accepted" if "MessagingServiceSid" in form else "queued",
                "to": to,
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
            },
        )


@pytest.fixture
def twilio(serve):
    return serve(FakeTwilio())


def twilio_channel(server, **config):
    return channel_with_event(
        key="sms",
        backend="sms.twilio",
        config={
            "base_url": server.url,
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": "+15005550006",
            **config,
        },
    )


@pytest.mark.django_db(transaction=True)
def test_notify_sends_an_sms_through_rq_worker(twilio, run_worker):
    twilio_channel(twilio, status_callback="https://notify.example.com/twilio/status")
    user = factories.UserFactory(first_name="Ann")
    ChannelAddress.objects.create(user=user, kind="phone", address="+4915112345678")

    notify("order-shipped", user, {"order_id": "A-7"}, channels=["sms"])
    assert run_worker() == 1

    message = Message.objects.get()
    assert (message.status, message.provider_id) == (MessageStatus.SENT, f"SM{1:032x}")
    assert twilio.requests[0].form() == {
        "To": "+4915112345678",
        "From": "+15005550006",
        "Body": "Hello Ann, order A-7 is on its way.",
        "StatusCallback": "https://notify.example.com/twilio/status",
    }


def test_a_messaging_service_instead_of_a_number(twilio, db):
    channel = twilio_channel(twilio, from_number="", messaging_service_sid=SERVICE_SID)

    (message,) = notify_and_dispatch(channel, {"phone": "+4915112345678"})

    assert message.status == MessageStatus.SENT
    form = twilio.requests[0].form()
    assert form["MessagingServiceSid"] == SERVICE_SID and "From" not in form


def test_a_batch_reuses_one_connection(twilio, db):
    channel = twilio_channel(twilio)
    recipients = [{"phone": f"+4915112345{i:03d}"} for i in range(6)]

    messages = notify_and_dispatch(channel, recipients)

    assert [m.status for m in messages] == [MessageStatus.SENT] * 6
    assert [m.provider_id for m in messages] == [f"SM{n:032x}" for n in range(1, 7)]
    assert (len(twilio.requests), twilio.connections) == (6, 1)


@pytest.mark.parametrize(("number", "code"), [("+15005550001", 21211), ("+15005550009", 21614)])
def test_an_invalid_number_is_rejected_and_deactivated(twilio, db, number, code):
    channel = twilio_channel(twilio)

    alive, dead = notify_and_dispatch(channel, [{"phone": "+4915112345678"}, {"phone": number}])

    assert alive.status == MessageStatus.SENT
    assert (dead.status, dead.attempts) == (MessageStatus.FAILED, 1)
    assert dead.last_error.startswith(
        f"AddressRejected: SMS (Twilio) HTTP 400: Twilio error {code}"
    )
    assert f"https://www.twilio.com/docs/errors/{code}" in dead.last_error
    address = ChannelAddress.objects.get(kind="phone", address=number)
    assert not address.is_active and str(code) in address.deactivated_reason
    again = notify("order-shipped", {"phone": number}, {"order_id": "1"}, channels=["sms"])
    assert again.messages == [] and again.skipped[0].reason == "inactive address"


def test_a_refused_region_fails_without_deactivating(twilio, db):
    channel = twilio_channel(twilio)

    (message,) = notify_and_dispatch(channel, {"phone": "+15005550003"})

    assert message.status == MessageStatus.FAILED
    assert message.last_error.startswith(
        "PermanentError: SMS (Twilio) HTTP 400: Twilio error 21408"
    )
    assert not ChannelAddress.objects.filter(address="+15005550003").exists()


def test_a_bad_sender_fails_without_deactivating_the_recipient(twilio, db):
    channel = twilio_channel(twilio, from_number="+15005550001")

    (message,) = notify_and_dispatch(channel, {"phone": "+4915112345678"})

    assert message.status == MessageStatus.FAILED
    assert "Twilio error 21212: The 'From' number" in message.last_error
    assert not ChannelAddress.objects.exists()


def test_a_wrong_auth_token_fails_with_twilios_text(twilio, db):
    channel = twilio_channel(twilio, auth_token="wrong-token")

    (message,) = notify_and_dispatch(channel, {"phone": "+4915112345678"})

    assert message.status == MessageStatus.FAILED
    assert "Twilio error 20003: Authentication Error" in message.last_error
    assert "wrong-token" not in message.last_error


def test_a_5xx_is_retried_then_sent(twilio, db):
    channel = twilio_channel(twilio)
    twilio.script = [twilio_error(503, 20500, "Service Unavailable")]

    (message,) = notify_and_dispatch(channel, {"phone": "+4915112345678"})
    assert message.status == MessageStatus.RETRYING
    assert "HTTP 503: Twilio error 20500: Service Unavailable" in message.last_error

    (message,) = dispatch_again([message])
    assert (message.status, message.attempts, message.provider_id) == ("sent", 2, f"SM{1:032x}")


def test_429_honours_retry_after(twilio, db):
    channel = twilio_channel(twilio)
    twilio.script = [twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": "45"})]
    before = timezone.now()

    (message,) = notify_and_dispatch(channel, {"phone": "+4915112345678"})

    assert message.status == MessageStatus.RETRYING
    assert "Twilio error 20429: Too Many Requests" in message.last_error
    assert message.next_attempt_at >= before + dt.timedelta(seconds=45)


def test_a_timeout_is_transient(twilio, db):
    channel = twilio_channel(twilio, timeout=0.3)
    twilio.script = [Reply(201, {"sid": "SMlate"}, delay=1.5)]

    (message,) = notify_and_dispatch(channel, {"phone": "+4915112345678"})

    assert message.status == MessageStatus.RETRYING
    assert "no answer within 0.3s" in message.last_error


def test_malformed_numbers_are_refused_at_notify(twilio, db):
    twilio_channel(twilio)
    with pytest.raises(InvalidRecipient, match=r"sms: '0151 123' is not a phone number in E\.164"):
        notify("order-shipped", {"phone": "0151 123"}, {"order_id": "1"}, channels=["sms"])
    assert not Message.objects.exists() and twilio.requests == []


def test_send_test(twilio, db):
    options = {
        "base_url": twilio.url,
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": "Shop",
    }
    backend = TwilioSmsBackend(channel_key="sms", options=options)
    assert backend.send_test("+4915112345678", text="It works") == f"SM{1:032x}"
    assert twilio.requests[0].form()["From"] == "Shop"
    with pytest.raises(AddressRejected, match="21211"):
        backend.send_test("+15005550001", text="It works")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"account_sid": "AC123"}, "account_sid: an Account SID"),
        ({"from_number": ""}, "set from_number or messaging_service_sid"),
        ({"from_number": "0151 123"}, "from_number: a number in E.164"),
        ({"messaging_service_sid": "MG1"}, "messaging_service_sid: a Messaging Service SID"),
        ({"auth_token": ""}, "auth_token: This field is required"),
    ],
)
def test_options_are_validated(change, problem):
    options = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": "+15005550006"}
    with pytest.raises(ConfigurationError, match=re.escape(problem)):
        TwilioSmsBackend(options=options | change)
    assert TwilioSmsBackend.secret_fields() == ("auth_token",)


def test_a_number_written_with_spaces_is_sent_and_stored_in_e164(twilio, db):
    channel = twilio_channel(twilio)

    (message,) = notify_and_dispatch(channel, {"phone": "+49 (0)151 1234-5678"})

    assert message.status == MessageStatus.SENT
    assert twilio.requests[0].form()["To"] == message.address == "+4915112345678"


def test_the_sender_number_is_stored_in_e164():
    backend = TwilioSmsBackend(
        options={
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": "+1 500 555 0006",
        }
    )
    assert backend.options["from_number"] == "+15005550006"
