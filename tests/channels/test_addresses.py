"""Address formats shared by backends and the domain: phone numbers through phonenumbers
(any international spelling in, E.164 out), email addresses through Django's validator."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from channels.addresses import validate_email, validate_phone


@pytest.mark.parametrize(
    ("number", "e164"),
    [
        ("+14155550123", "+14155550123"),
        ("+4915112345678", "+4915112345678"),
        ("+1 (415) 555-0123", "+14155550123"),
        ("+49 (0)151 12345678", "+4915112345678"),
        (" tel:+1-415-555-0123 ", "+14155550123"),
        ("+15550000000", "+15550000000"),  # possible, if not assigned: the provider judges
        ("+15005550006", "+15005550006"),  # Twilio's test numbers
    ],
)
def test_a_phone_number_is_accepted_in_any_international_spelling_and_given_in_e164(number, e164):
    assert validate_phone(number) == e164


@pytest.mark.parametrize(
    "number",
    [
        "4915112345678",  # no country code
        "0151 123",
        "+0123456",
        "+1 415 555",  # too short for its country
        "+12",
        "+1234567890123456",  # too long
        "+1-415-555-0123 ext. 5",  # an extension cannot take an SMS
        "phone",
        "",
    ],
)
def test_a_malformed_phone_number_is_refused_naming_it(number):
    with pytest.raises(ValidationError) as refused:
        validate_phone(number)
    assert refused.value.messages == [
        f"{number!r} is not a phone number in E.164 format (e.g. +14155550123)"
    ]


def test_an_email_address_is_checked_by_djangos_validator():
    assert validate_email("ann@example.com") == "ann@example.com"
    with pytest.raises(ValidationError, match="'ann@' is not a valid email address"):
        validate_email("ann@")
