"""Helpers shared by the HTTP backends."""

from __future__ import annotations

import datetime as dt

import pytest

from channels.backends.base import AddressRejected, Outgoing, PermanentError, TransientError
from channels.backends.http import (
    MAX_RETRY_AFTER,
    HttpBackend,
    HttpRequest,
    retry_after_seconds,
)

from ..fakes import Reply, json_reply


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


# --- the template method: request → post → parse → error table ------------------------------


class TableBackend(HttpBackend):
    """A provider that answers ``{"code": …, "message": …}`` on errors."""

    verbose_name = "Table"
    errors = {"gone": "dead", "slow_down": "transient", "bad_key": "permanent"}
    hints = {"bad_key": "check the channel's key"}

    def request(self, message: Outgoing) -> HttpRequest:
        return HttpRequest("POST", f"{self.base_url}/send", {"json": {"to": message.address}})

    def provider_code(self, response, answer):
        if isinstance(answer, dict) and "code" in answer:
            return answer["code"], f"Table {answer['code']}: {answer['message']}"
        return None, self.http_text(response)


@pytest.mark.parametrize(
    ("reply", "error", "text", "retry_after"),
    [
        # The table decides, whatever the status says.
        (
            json_reply(400, {"code": "gone", "message": "no such number"}),
            AddressRejected,
            "Table gone: no such number",
            None,
        ),
        (
            json_reply(400, {"code": "slow_down", "message": "later"}, **{"Retry-After": "7"}),
            TransientError,
            "Table slow_down: later",
            7.0,
        ),
        (
            json_reply(503, {"code": "bad_key", "message": "who are you"}),
            PermanentError,
            "Table bad_key: who are you (check the channel's key)",
            None,
        ),
        # A code the table does not list goes by the status.
        (
            json_reply(503, {"code": "odd", "message": "hm"}, **{"Retry-After": "3"}),
            TransientError,
            "Table odd: hm",
            3.0,
        ),
        (json_reply(429, {"code": "odd", "message": "hm"}), TransientError, "Table odd: hm", None),
        (json_reply(422, {"code": "odd", "message": "hm"}), PermanentError, "Table odd: hm", None),
        # No code at all: the status and the body (or the reason when the body is empty).
        (
            Reply(502, "<h1>bad gateway</h1>"),
            TransientError,
            "Table HTTP 502: <h1>bad gateway</h1>",
            None,
        ),
        (Reply(404, ""), PermanentError, "Table HTTP 404: Not Found", None),
        (
            Reply(301, "", {"Location": "https://elsewhere.example/"}),
            PermanentError,
            "Table HTTP 301: Moved Permanently",
            None,
        ),
    ],
)
def test_a_refused_request_is_classified_by_the_error_table_then_the_status(
    serve, reply, error, text, retry_after
):
    server = serve(lambda request: reply)
    backend = TableBackend(options={"base_url": server.url})
    outgoing = Outgoing(id=1, uuid="u-1", address="+4915112345678")

    with backend:
        (result,) = backend.send([outgoing])

    assert type(result.error) is error
    assert str(result.error) == text
    assert getattr(result.error, "retry_after", None) == retry_after
    assert server.requests[0].json() == {"to": "+4915112345678"}


def test_a_success_stores_the_answers_id(serve):
    server = serve(lambda request: json_reply(201, {"id": 42}))
    backend = TableBackend(options={"base_url": server.url})

    assert backend.send_test("+4915112345678") == "42"
