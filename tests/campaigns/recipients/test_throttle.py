"""Failed logins (both login pages) and failed API tokens are throttled per client address:
after the limit, even the right password or a valid token is refused (429, Retry-After) until
the cool-off has passed. A username alone locks nobody out, and behind a proxy the client is
the address the proxy saw."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.utils import timezone

from campaigns.connections import redis_connection
from campaigns.models import ApiToken
from campaigns.recipients.throttle import KEY

pytestmark = pytest.mark.django_db

PASSWORD = "pw-right-123"
LIMIT = 3
COOLOFF = dt.timedelta(minutes=10)


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = COOLOFF
    settings.NOTIFIER = {
        **settings.NOTIFIER,
        "API_TOKEN_FAILURE_LIMIT": LIMIT,
        "API_TOKEN_COOLOFF": 600,
    }
    return settings


@pytest.fixture
def ann(django_user_model):
    return django_user_model.objects.create_user("ann", "ann@x.io", PASSWORD)


@pytest.fixture
def mia(django_user_model):
    return django_user_model.objects.create_user("mia", "mia@x.io", PASSWORD, is_staff=True)


def log_in(path: str, username: str, password: str, **meta):
    """A fresh browser: (the response, whether it ended logged in)."""
    client = Client(**meta)
    response = client.post(path, {"username": username, "password": password})
    return response, "_auth_user_id" in client.session


def assert_locked_out(response, logged_in: bool) -> None:
    assert (response.status_code, logged_in) == (429, False)
    assert response["Retry-After"] == str(int(COOLOFF.total_seconds()))
    page = response.content.decode()
    assert "Too many failed logins" in page
    assert "even with the right password" in page


@pytest.mark.parametrize(("path", "user"), [("/accounts/login/", "ann"), ("/admin/login/", "mia")])
def test_wrong_passwords_lock_that_address_and_username_until_the_cool_off(path, user, request):
    request.getfixturevalue(user)
    for _ in range(LIMIT):
        response, logged_in = log_in(path, user, "wrong")
        assert not logged_in and response.status_code in (200, 429)
    assert_locked_out(*log_in(path, user, PASSWORD))

    # The username alone locks nothing: the user from elsewhere, others from here, get in.
    assert log_in(path, user, PASSWORD, REMOTE_ADDR="198.51.100.9")[1]
    assert not log_in(path, user, "wrong", REMOTE_ADDR="198.51.100.9")[1]  # one more failure
    other = "mia" if user == "ann" else "ann"
    request.getfixturevalue(other)
    if path == "/accounts/login/":
        assert log_in(path, other, PASSWORD)[1]

    # Once the cool-off has passed since the last failure, the right password works again.
    AccessAttempt.objects.update(attempt_time=timezone.now() - COOLOFF - dt.timedelta(seconds=1))
    response, logged_in = log_in(path, user, PASSWORD)
    assert logged_in and response.status_code == 302


def test_behind_a_proxy_the_client_is_whom_the_proxy_saw(ann, limits):
    limits.NOTIFIER = {**limits.NOTIFIER, "TRUSTED_PROXY_COUNT": 1}
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for n in range(LIMIT):  # an attacker rotating what they put in X-Forwarded-For
        forwarded = f"192.0.2.{n}, 203.0.113.5"
        log_in("/accounts/login/", "ann", "wrong", HTTP_X_FORWARDED_FOR=forwarded, **proxy)
    assert_locked_out(
        *log_in("/accounts/login/", "ann", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.5", **proxy)
    )
    # Everyone else behind the same proxy is someone else.
    _, logged_in = log_in(
        "/accounts/login/", "ann", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy
    )
    assert logged_in


def test_an_ipv6_client_cannot_escape_by_moving_in_its_64(ann):
    for n in range(LIMIT):
        log_in("/accounts/login/", "ann", "wrong", REMOTE_ADDR=f"2001:db8:1:2::{n + 1:x}")
    assert_locked_out(*log_in("/accounts/login/", "ann", PASSWORD, REMOTE_ADDR="2001:db8:1:2::ff"))
    assert log_in("/accounts/login/", "ann", PASSWORD, REMOTE_ADDR="2001:db8:1:3::1")[1]


def api(token: str, **meta):
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}", **meta).get("/api/inbox/unread-count/")


def test_failed_api_tokens_lock_the_address_with_retry_after(ann):
    _, raw = ApiToken.generate(user=ann, name="phone")
    assert api(raw).status_code == 200
    for n in range(LIMIT):
        assert api(f"ntf_guess-{n}").status_code == 401
    response = api(raw)  # the right token, from the locked address
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 600
    assert "too many failed API token attempts" in response.json()["error"]
    assert api(raw, REMOTE_ADDR="198.51.100.9").status_code == 200  # another address
    assert api(raw).status_code == 429  # a success elsewhere unlocks nothing here


def test_api_tokens_work_again_after_the_cool_off(ann, limits):
    limits.NOTIFIER = {**limits.NOTIFIER, "API_TOKEN_COOLOFF": 1}
    _, raw = ApiToken.generate(user=ann, name="phone")
    for n in range(LIMIT):
        assert api(f"ntf_guess-{n}").status_code == 401
    response = api(raw)
    assert (response.status_code, response["Retry-After"]) == (429, "1")
    # Wait for Redis to expire the count (it does, one second after the last failure).
    key, deadline = KEY.format("127.0.0.1"), time.monotonic() + 5
    while redis_connection().exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api(raw).status_code == 200


def test_behind_a_proxy_token_guesses_count_for_the_client(ann, limits):
    limits.NOTIFIER = {**limits.NOTIFIER, "TRUSTED_PROXY_COUNT": 1}
    _, raw = ApiToken.generate(user=ann, name="phone")
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for n in range(LIMIT):
        api(f"ntf_guess-{n}", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.5", **proxy)
    assert api(raw, HTTP_X_FORWARDED_FOR="203.0.113.5", **proxy).status_code == 429
    assert api(raw, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy).status_code == 200
