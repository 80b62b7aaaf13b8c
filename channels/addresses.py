"""Address formats that more than one backend (and the domain's contacts) share.

Each validator raises ``ValidationError`` naming the value and what it should look like, and
returns the address in the one form it is stored and sent in.
"""

from __future__ import annotations

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


def validate_email(value: str) -> str:
    """``value`` when it is an email address Django would send to; ``ValidationError``
    naming it when it is not."""
    try:
        validators.validate_email(value)
    except ValidationError:
        raise ValidationError(f"{value!r} is not a valid email address") from None
    return value
