"""Push notifications through Expo's push service.

``POST {base_url}/--/api/v2/push/send`` with a JSON array of up to 100 messages (``to``: the
recipient's ``push_token``, ``ExponentPushToken[…]``; ``title``: the subject; ``body``: the
text; ``data``: the message's id and event, plus ``extra["data"]`` when it is a mapping).
A batch goes out in chunks of ``chunk_size`` (default 100) messages per request, over one
connection; each chunk's results are recorded when its answer arrives.

Expo answers one *ticket* per message, in order: ``{"status": "ok", "id": …}`` (the id is
stored as the provider id; it names the delivery receipt) or ``{"status": "error",
"message": …, "details": {"error": "DeviceNotRegistered"}}``: ``DeviceNotRegistered``
raises ``AddressRejected`` (the token is deactivated), ``MessageRateExceeded`` retries, the
others (``MessageTooBig``, ``InvalidCredentials``, ``MismatchSenderId``) fail the message.
A request refused as a whole (``{"errors": [{"code", "message"}]}``) fails or, for 429 and
5xx, retries every message of the chunk. Set ``access_token`` when the project enables
Expo's enhanced push security.

A ticket only says Expo took the message. Its *receipt* says what Apple or Google answered:
``receipts(ids)`` posts the ticket ids to ``{base_url}/--/api/v2/push/getReceipts``
(``{"ids": [...]}``, at most 1000 per request) and returns Expo's ``data`` mapping, ``{id:
{"status": "ok"}}`` or ``{id: {"status": "error", "message": …, "details": {"error":
"DeviceNotRegistered" | "MessageTooBig" | "MessageRateExceeded" | "MismatchSenderId" |
"InvalidCredentials"}}}``; an id whose receipt is not ready yet (or is gone: Expo keeps them
about a day) is absent. A periodic job polls them (``polls_receipts``);
``channels.webhooks.expo.receipt_event`` turns each into a delivery event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import httpx
from django import forms
from django.core.exceptions import ValidationError

from .base import DeliveryError, Outgoing, SendResult, TransientError, delivery_error
from .fields import PUSH_FIELDS
from .http import HttpBackend, HttpConfigForm, HttpRequest, response_json

PUSH_TOKEN = re.compile(r"^Expo(nent)?PushToken\[[^\[\]\s]+\]$")
MAX_CHUNK = 100
#: Receipt ids per ``getReceipts`` request: Expo refuses more (``PUSH_TOO_MANY_RECEIPTS``).
MAX_RECEIPTS = 1000


class ExpoConfigForm(HttpConfigForm):
    access_token = forms.CharField(
        required=False, help_text="Access token, if the project enables push security."
    )
    sound = forms.ChoiceField(
        required=False, choices=[("", "silent"), ("default", "default")], help_text="iOS sound."
    )
    priority = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Expo's default"),
            ("default", "default"),
            ("normal", "normal"),
            ("high", "high"),
        ],
    )
    channel_id = forms.CharField(required=False, help_text="Android notification channel.")
    ttl = forms.IntegerField(
        required=False, min_value=0, help_text="Seconds the push services keep trying."
    )
    chunk_size = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_CHUNK,
        help_text=f"Messages per request (default {MAX_CHUNK}, Expo's limit).",
    )

    secret_fields = ("access_token",)


class ExpoPushBackend(HttpBackend):
    key = "push.expo"
    verbose_name = "Push (Expo)"
    address_key = "push_token"
    template_fields = PUSH_FIELDS
    ConfigForm = ExpoConfigForm
    category = "push"
    polls_receipts = True
    default_base_url = "https://exp.host"
    #: A ticket's (or a receipt's) ``details.error``; the others fail the message.
    errors = {"DeviceNotRegistered": "dead", "MessageRateExceeded": "transient"}

    def client_options(self) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.options.get("access_token"):
            headers["Authorization"] = f"Bearer {self.options['access_token']}"
        return {"headers": headers}

    def validate_address(self, address: str) -> None:
        if not PUSH_TOKEN.match(address):
            raise ValidationError(f"{address!r} is not an Expo push token (ExponentPushToken[…])")

    def payload(self, message: Outgoing) -> dict[str, Any]:
        data = {"notifier_id": message.uuid, "event": message.event_key}
        if isinstance(message.extra.get("data"), dict):
            data |= message.extra["data"]
        item: dict[str, Any] = {"to": message.address, "body": message.text, "data": data}
        if message.subject:
            item["title"] = message.subject
        if message.link:  # the app opens data.url on tap (Expo's linking guide)
            data["url"] = message.link
        if message.image:
            item["richContent"] = {"image": message.image}
        for option, field in (
            ("sound", "sound"),
            ("priority", "priority"),
            ("channel_id", "channelId"),
            ("ttl", "ttl"),
        ):
            if self.options.get(option) not in (None, ""):
                item[field] = self.options[option]
        return item

    # Expo takes up to 100 messages per request: the send loop posts chunks.
    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        size = self.options.get("chunk_size") or MAX_CHUNK
        chunk: list[Outgoing] = []
        for message in messages:
            chunk.append(message)
            if len(chunk) >= size:
                yield from self.send_chunk(chunk)
                chunk = []
        if chunk:
            yield from self.send_chunk(chunk)

    def send_one(self, message: Outgoing) -> str:
        (result,) = self.send_chunk([message])
        if result.error is not None:
            raise result.error
        return result.provider_id

    def send_chunk(self, chunk: list[Outgoing]) -> list[SendResult]:
        try:
            tickets = self.post_chunk(chunk)
        except DeliveryError as error:
            return [SendResult(message, error=error) for message in chunk]
        except Exception as error:
            failure = self.classify(error)
            return [SendResult(message, error=failure) for message in chunk]
        return [
            self.ticket_result(message, ticket)
            for message, ticket in zip(chunk, tickets, strict=True)
        ]

    def receipts(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The receipts Expo has for these ticket ids, ``{id: receipt}``, asked for in requests
        of up to ``MAX_RECEIPTS`` ids over this backend's client (``open()`` it around a run).
        Ids without a receipt yet are left out. A request refused as a whole raises
        ``TransientError`` (429, 5xx, network) or ``PermanentError``, naming Expo's errors."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), MAX_RECEIPTS):
            chunk = list(ids[start : start + MAX_RECEIPTS])
            response = self.post(f"{self.base_url}/--/api/v2/push/getReceipts", json={"ids": chunk})
            answer = response_json(response)
            data = answer.get("data") if isinstance(answer, dict) else None
            if not response.is_success or not isinstance(data, dict):
                raise self.refused(response, answer, what="receipts answer")
            wanted = set(chunk)
            found.update(
                (str(key), receipt)
                for key, receipt in data.items()
                if key in wanted and isinstance(receipt, dict)
            )
        return found

    def chunk_request(self, chunk: list[Outgoing]) -> HttpRequest:
        payload = [self.payload(message) for message in chunk]
        return HttpRequest("POST", f"{self.base_url}/--/api/v2/push/send", {"json": payload})

    def post_chunk(self, chunk: list[Outgoing]) -> list[dict[str, Any]]:
        method, url, kwargs = self.chunk_request(chunk)
        response = self.post(url, method=method, **kwargs)
        answer = response_json(response)
        if not response.is_success or not isinstance(answer, dict) or "data" not in answer:
            raise self.refused(response, answer, what="answer")
        tickets = answer["data"]
        if not isinstance(tickets, list) or len(tickets) != len(chunk):
            raise TransientError(
                f"{self.verbose_name}: {len(tickets) if isinstance(tickets, list) else 'no'} "
                f"tickets for {len(chunk)} messages"
            )
        return tickets

    def refused(self, response: httpx.Response, answer: Any, *, what: str) -> DeliveryError:
        """A request refused as a whole; a 200 that is not Expo's documented answer is
        retried."""
        if response.is_success:
            detail = _request_errors(answer) or response.text[:500]
            return TransientError(f"{self.verbose_name}: unexpected {what}: {detail}")
        return self.error(response, answer)

    def provider_code(self, response: httpx.Response, answer: Any) -> tuple[Any, str]:
        return None, self.http_text(response, _request_errors(answer))

    def ticket_result(self, message: Outgoing, ticket: dict[str, Any]) -> SendResult:
        if ticket.get("status") == "ok":
            return SendResult(message, provider_id=str(ticket.get("id", "")))
        code = (ticket.get("details") or {}).get("error", "")
        text = f"Expo {code or 'error'}: {ticket.get('message', '')}".strip()
        return SendResult(message, error=delivery_error(self.errors.get(code, "permanent"), text))


def _request_errors(answer: Any) -> str:
    """Expo's errors for a request refused as a whole: ``{"errors": [{"code", "message"}]}``."""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if not isinstance(errors, list):
        return ""
    return "; ".join(
        f"{e.get('code', '')}: {e.get('message', '')}" for e in errors if isinstance(e, dict)
    )
