"""The shared base of backends that speak a provider's HTTP API (httpx), and its template
method.

One ``httpx.Client`` per batch: ``open()`` creates it, ``close()`` closes it, so every message
of a batch reuses the same keep-alive connection. Sending one message is

    request(message) → post through the batch's client → parse(response, answer, message)

``request()`` builds ``(method, url, kwargs)``; network failures and timeouts are transient;
``parse()`` returns the provider's id, or raises ``error(response, answer)``, which asks
``provider_code()`` for the provider's error code and text, looks the code up in the class's
``errors`` table (code → ``"transient"`` / ``"permanent"`` / ``"dead"``) and, for a code it
does not list, goes by the HTTP status: 408, 425, 429 and 5xx transient (``Retry-After``
honoured), anything else permanent. A provider module is its config form, ``request()``,
maybe ``parse()``, its ``errors`` table and ``provider_code()``; a provider that does not fit
overrides one hook (``error_kind()``, ``retry_after()``), never the loop.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import re
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar, NamedTuple

import httpx
from django import forms

from .base import (
    BaseBackend,
    BaseConfigForm,
    DeliveryError,
    ErrorKind,
    Outgoing,
    TransientError,
    delivery_error,
)

USER_AGENT = "notifier/0.1"
#: How much of a provider's answer is kept in an error (the message stores 4000 chars).
MAX_ERROR_BODY = 1000
#: A provider asking for more than a day is capped at a day (the backoff may still be longer).
MAX_RETRY_AFTER = 86400.0


class RedactSecrets(logging.Filter):
    """Hides secrets that some providers put in URLs (Telegram's bot token, Slack's webhook
    path) from httpx's request log lines, which name the full URL."""

    patterns: list[re.Pattern[str]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and self.patterns:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(self.redact(arg) for arg in args)
        return True

    @classmethod
    def redact(cls, value: Any) -> Any:
        if not isinstance(value, str | httpx.URL):
            return value
        text = str(value)
        for pattern in cls.patterns:
            text = pattern.sub(lambda m: m.group(0).replace(m.group("secret"), "[secret]"), text)
        return text


def redact_in_logs(pattern: str) -> None:
    """Redact the named group ``secret`` of ``pattern`` wherever httpx logs a URL."""
    compiled = re.compile(pattern)
    if all(p.pattern != pattern for p in RedactSecrets.patterns):
        RedactSecrets.patterns.append(compiled)
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, RedactSecrets) for f in httpx_logger.filters):
        httpx_logger.addFilter(RedactSecrets())


def retry_after_seconds(value: str | int | float | None) -> float | None:
    """Seconds from a ``Retry-After`` value (a number of seconds or an HTTP date), at most
    ``MAX_RETRY_AFTER``; None when there is none or it makes no sense."""
    if value is None or value == "":
        return None
    seconds: float | None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        try:
            when = email.utils.parsedate_to_datetime(str(value).strip())
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def response_text(response: httpx.Response) -> str:
    """The provider's answer, shortened, for the error stored on the message."""
    text = response.text.strip()
    if len(text) > MAX_ERROR_BODY:
        text = text[:MAX_ERROR_BODY] + "…"
    return text


def status_kind(status: int) -> ErrorKind:
    """What an HTTP status says when the provider's answer says nothing more: 408, 425, 429
    and 5xx are worth retrying; anything else (a 4xx, or a 2xx that is not a success) is not."""
    if status in (408, 425, 429) or status >= 500:
        return "transient"
    return "permanent"


def response_json(response: httpx.Response) -> Any:
    """The answer's JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


class HttpConfigForm(BaseConfigForm):
    """Options every HTTP backend has: where the provider is, and how long to wait."""

    base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="The provider's API root (default: its public URL). Point it at a proxy or "
        "a test server.",
    )
    timeout = forms.FloatField(
        required=False,
        min_value=0.1,
        max_value=120,
        help_text="Seconds to wait for the provider (connect and each read); default 10.",
    )


class HttpRequest(NamedTuple):
    """What ``HttpBackend.request()`` builds: the method, the URL, and the keyword arguments
    of ``httpx.Client.request`` (``json``, ``data``, ``content``, ``headers``)."""

    method: str
    url: str
    kwargs: dict[str, Any]


class HttpBackend(BaseBackend):
    """A backend that posts to an HTTP API with one client per batch."""

    ConfigForm: ClassVar[type[BaseConfigForm]] = HttpConfigForm
    #: The provider's public API root, used when the channel sets no ``base_url``.
    default_base_url: ClassVar[str] = ""
    default_timeout: ClassVar[float] = 10.0
    #: Provider error code → what it means; codes not listed go by the HTTP status.
    errors: ClassVar[Mapping[Any, ErrorKind]] = {}
    #: Provider error code → what the operator should check, appended to the error's text.
    hints: ClassVar[Mapping[Any, str]] = {}

    client: httpx.Client | None = None

    @property
    def base_url(self) -> str:
        return (self.options.get("base_url") or self.default_base_url).rstrip("/")

    @property
    def timeout(self) -> float:
        return float(self.options.get("timeout") or self.default_timeout)

    def client_options(self) -> dict[str, Any]:
        """Extra ``httpx.Client`` arguments (auth, headers) for this provider."""
        return {}

    def open(self) -> None:
        if self.client is None:
            options = self.client_options()
            headers = {"User-Agent": USER_AGENT, **options.pop("headers", {})}
            self.client = httpx.Client(
                timeout=self.timeout, headers=headers, follow_redirects=False, **options
            )

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            finally:
                self.client = None

    # --- the template method ----------------------------------------------------------------
    def send_one(self, message: Outgoing) -> str:
        method, url, kwargs = self.request(message)
        response = self.post(url, method=method, **kwargs)
        return self.parse(response, response_json(response), message)

    def request(self, message: Outgoing) -> HttpRequest:
        """The request that delivers ``message``. Raise PermanentError for a message the
        provider would refuse anyway (too long, empty)."""
        raise NotImplementedError(f"{type(self).__name__} must implement request()")

    def parse(self, response: httpx.Response, answer: Any, message: Outgoing) -> str:
        """The provider's id for a delivered message (``answer`` is the JSON of the answer,
        or None); raise ``self.error(response, answer)`` when it was not delivered. By default
        a 2xx answer is a success and its JSON ``id``, if any, the provider id."""
        if not response.is_success:
            raise self.error(response, answer)
        if isinstance(answer, dict) and isinstance(answer.get("id"), str | int):
            return str(answer["id"])
        return ""

    def provider_code(self, response: httpx.Response, answer: Any) -> tuple[Any, str]:
        """``(code, text)``: the provider's error code (None when it gives none) and the error
        text stored on the message. By default: no code, and the status with the body."""
        return None, self.http_text(response)

    def error_kind(self, code: Any, response: httpx.Response, answer: Any) -> ErrorKind:
        """The ``errors`` table's word for ``code``, else what the HTTP status says."""
        if isinstance(code, Hashable) and code in self.errors:
            return self.errors[code]
        return status_kind(response.status_code)

    def retry_after(self, response: httpx.Response, answer: Any) -> float | None:
        """Seconds to wait before a retry, as the provider asks (``Retry-After``)."""
        return retry_after_seconds(response.headers.get("Retry-After"))

    def error(self, response: httpx.Response, answer: Any) -> DeliveryError:
        """The error a refused request raises (see the module's docstring)."""
        code, text = self.provider_code(response, answer)
        if isinstance(code, Hashable) and code in self.hints:
            text = f"{text} ({self.hints[code]})"
        kind = self.error_kind(code, response, answer)
        retry_after = self.retry_after(response, answer) if kind == "transient" else None
        return delivery_error(kind, text, retry_after=retry_after)

    def http_text(self, response: httpx.Response, detail: str = "") -> str:
        """``<backend> HTTP <status>: <detail>`` (default: the answer's body, or its reason)."""
        detail = detail or response_text(response) or response.reason_phrase
        return f"{self.verbose_name} HTTP {response.status_code}: {detail}"

    # --- the transport ----------------------------------------------------------------------
    def post(self, url: str, *, method: str = "POST", **kwargs: Any) -> httpx.Response:
        """Send a request through the batch's client; network failures become TransientError.

        Errors never name the URL: some providers put the secret in it (Telegram, Slack)."""
        if self.client is None:
            self.open()
        try:
            return self.client.request(method, url, **kwargs)
        except httpx.TimeoutException as error:
            raise TransientError(
                f"{self.verbose_name}: no answer within {self.timeout:g}s ({type(error).__name__})"
            ) from error
        except httpx.TransportError as error:
            raise TransientError(
                f"{self.verbose_name}: connection failed ({type(error).__name__}: {error})"
            ) from error

    def classify(self, error: Exception) -> DeliveryError:
        if isinstance(error, httpx.TransportError):
            return TransientError(f"{type(error).__name__}: {error}")
        return super().classify(error)
