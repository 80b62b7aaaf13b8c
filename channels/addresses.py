"""Address formats that more than one backend (and the domain's contacts) share.

Each validator raises ``ValidationError`` naming the value and what it should look like, and
returns the address in the one form it is stored and sent in.
"""

from __future__ import annotations

import re

import phonenumbers
from django.core import validators
from django.core.exceptions import ValidationError

PHONE_EXAMPLE = "+14155550123"


def validate_phone(value: str) -> str:
    """The phone number ``value`` in E.164 (``+14155550123``), from any international
    spelling of it (``+1 (415) 555-0123``, ``tel:+1-415-555-0123``); ``ValidationError``
    when it is not one.

    The check is that the number is *possible* (a country code, and a length that country
    uses), not that its range is assigned today (``is_valid_number``): the provider is the
    judge of whether a number exists, and says so with a dead-number answer that deactivates
    the address, while metadata of assigned ranges lags behind new ones and refuses the
    providers' own test numbers. A number without its country code or with an extension
    cannot take an SMS and is refused."""
    problem = f"{value!r} is not a phone number in E.164 format (e.g. {PHONE_EXAMPLE})"
    if not isinstance(value, str):
        raise ValidationError(problem)
    try:
        number = phonenumbers.parse(value.strip(), None)
    except phonenumbers.NumberParseException:
        raise ValidationError(problem) from None
    if number.extension or not phonenumbers.is_possible_number(number):
        raise ValidationError(problem)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


#: Most addresses: plain ASCII, a dot-atom before the @, labels of letters, digits and inner
#: hyphens after it, and a TLD of letters. Every address of this form is one Django's
#: validator accepts (tests/channels/test_addresses.py checks a corpus), found in a tenth of
#: its time (a campaign checks each recipient's); any other goes to Django's validator.
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_PLAIN_EMAIL_LENGTH = 254


def validate_email(value: str) -> str:
    """``value`` when it is an email address Django would send to; ``ValidationError``
    naming it when it is not."""
    if (
        isinstance(value, str)
        and len(value) <= _PLAIN_EMAIL_LENGTH
        and _PLAIN_EMAIL.fullmatch(value)
    ):
        return value
    try:
        validators.validate_email(value)
    except ValidationError:
        raise ValidationError(f"{value!r} is not a valid email address") from None
    return value
