"""Helpers shared by the HTTP backends."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from channels.backends.http import MAX_RETRY_AFTER, retry_after_seconds, validate_e164


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 7 ", 7.0),
        (2.5, 2.5),
        ("-5", 0.0),
        ("nan", None),
        ("inf", None),
        ("99999999999", MAX_RETRY_AFTER),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: now
    ],
)
def test_retry_after_seconds(value, seconds):
    assert retry_after_seconds(value) == seconds


def test_retry_after_as_a_future_http_date():
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    value = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 290 <= retry_after_seconds(value) <= 300


@pytest.mark.parametrize("number", ["+14155550123", "+4915112345678", "+12"])
def test_e164_accepts(number):
    validate_e164(number)


@pytest.mark.parametrize(
    "number", ["4915112345678", "+0123456", "+1 415 555", "+1234567890123456", ""]
)
def test_e164_refuses(number):
    with pytest.raises(ValidationError, match=r"E\.164"):
        validate_e164(number)
