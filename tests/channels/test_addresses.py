"""Address formats shared by backends and the domain: phone numbers through phonenumbers
(any international spelling in, E.164 out), email addresses through Django's validator."""

from __future__ import annotations

import random

import pytest
from django.core.exceptions import ValidationError

from channels.addresses import _PLAIN_EMAIL, validate_email, validate_phone


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


def _near_addresses(count: int) -> list[str]:
    """Strings close to email addresses: plain ones, each with up to three random edits
    (seeded) from the characters that break an address or sit at its rules' edges (dots,
    hyphens, digits, @, spaces, quotes, non-ASCII, a newline), some made too long."""
    rng = random.Random(20261201)
    bases = [
        "ann@example.com",
        "a.b-c_d+tag@mail.example.co.uk",
        "x@y.io",
        "first.last@sub-domain.example.museum",
        "9@9a.b9.com",
        f"{'l' * 64}@{'d' * 63}.{'e' * 63}.com",
    ]
    edits = [*".-_+@ \t\n\"'!#$%&*/=?^`{|}~()[]<>,;:\\", "é", "ü", "é.", "9", "a", "A"]
    found = []
    for number in range(count):
        address = list(rng.choice(bases))
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            place = rng.randrange(len(address) + 1)
            action = rng.choice(["insert", "replace", "delete"])
            if action == "insert":
                address.insert(place, rng.choice(edits))
            elif address and place < len(address):
                if action == "replace":
                    address[place] = rng.choice(edits)
                else:
                    del address[place]
        text = "".join(address)
        if number % 50 == 0:
            text = "a" * rng.randint(180, 330) + text
        found.append(text)
    return found


def test_the_quick_email_check_accepts_only_what_djangos_validator_accepts():
    """validate_email() passes plain addresses without Django's validator: each of those
    must be one the validator accepts, and everything else gets the validator's verdict."""
    from django.core.validators import validate_email as django_validate_email

    quick = 0
    for address in _near_addresses(20000):
        try:
            django_validate_email(address)
            django_accepts = True
        except ValidationError:
            django_accepts = False
        if _PLAIN_EMAIL.fullmatch(address) and len(address) <= 254:
            quick += 1
            assert django_accepts, address
        try:
            ours = validate_email(address) == address
        except ValidationError:
            ours = False
        assert ours == django_accepts, address
    assert 2000 < quick < 18000  # the corpus reaches both paths
