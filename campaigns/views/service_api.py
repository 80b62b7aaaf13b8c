"""The HTTP API for services that are not Django (``/api/v1/``), built with django-ninja:
validated request schemas and an OpenAPI schema (``/api/v1/openapi.json``).

Authenticated by a service key (``ServiceKey``; ``Authorization: Bearer nsk_…`` or
``X-API-Key: nsk_…``), each operation checks the key's scope (403 naming it), and each key
has a rate limit (429 with ``Retry-After``). Every error is JSON: ``{"error": code,
"detail": what is wrong, …}``; a body that is not JSON, too large or nested too deep is a 400
(read through ``domain.untrusted_json``), never a 500.

POST /notifications              notify(): event, recipients, context, channels … (202)
GET  /messages/{id}              one message and its status
GET  /messages?idempotency_key=… messages of one request (or ?user_id=, ?address=)
GET  /optouts?user_id=|address=  a person's opt-outs
POST /optouts                    opt a person out (of everything, a channel, an event …)
POST /optouts/{id}/revoke        turn one back on (kept as the consent record)
"""

from __future__ import annotations

import datetime as dt
import re
import uuid as uuid_module
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, NinjaAPI, Query, Schema, Status
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import APIKeyHeader, HttpBearer
from pydantic import ConfigDict

from campaigns.domain.untrusted_json import InvalidJSON, json_parse
from campaigns.exceptions import (
    DuplicateNotification,
    IdempotencyConflict,
    InvalidArgument,
    InvalidContext,
    InvalidRecipient,
    MissingVariables,
    UnknownChannel,
    UnknownEvent,
)
from campaigns.integrations.servicekeys import (
    may_trigger,
    rate_limit_wait,
    service_key_authenticate,
)
from campaigns.models import Event, Message, OptOut, ServiceKey
from campaigns.models.optouts import PERSON_KINDS
from campaigns.outbox.catalog import Catalog, catalog
from campaigns.outbox.notify import notify
from channels.models import ChannelConfig

#: A client's Idempotency-Key: printable ASCII, and room for our prefix in the stored key.
IDEMPOTENCY_KEY_MAX = 200
LIST_LIMIT = 200
#: What a stored idempotency key starts with: "api:" and the service key's prefix.
_API_KEY_PREFIX = re.compile(r"^api:[^:]{1,12}:")


class ApiProblem(Exception):
    """An answer other than 2xx: ``status``, a short ``code`` and the ``detail`` naming the
    problem, plus any fields that help (``missing``, ``event`` …)."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


class UntrustedJSONParser(Parser):
    """Bodies go through ``json_parse`` (size, depth, UTF-8, plain JSON): its error names the
    problem and becomes a 400 (``_invalid_json``)."""

    def parse_body(self, request: HttpRequest) -> Any:
        return json_parse(request.body or b"{}", expect=dict)


def _key_check(request: HttpRequest, raw: str) -> ServiceKey | None:
    key = service_key_authenticate(raw)
    if key is None:
        return None
    wait = rate_limit_wait(key)
    if wait:
        raise ApiProblem(
            429,
            "rate_limited",
            f"this key may make {key.rate_limit} requests a minute: try again in {wait} s",
            retry_after=wait,
        )
    return key


class BearerKey(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ServiceKey | None:
        return _key_check(request, token)


class HeaderKey(APIKeyHeader):
    param_name = "X-API-Key"

    def authenticate(self, request: HttpRequest, key: str | None) -> ServiceKey | None:
        return _key_check(request, key) if key else None


api = NinjaAPI(
    title="Notifier API",
    version="1",
    description="Trigger notifications, look up messages, manage opt-outs. Authenticate with "
    "a service key: `Authorization: Bearer nsk_…` or `X-API-Key: nsk_…`.",
    auth=[BearerKey(), HeaderKey()],
    parser=UntrustedJSONParser(),
    urls_namespace="api-v1",
    docs_url="/docs",  # Swagger UI from django-ninja's static files: no inline script
)


def _problem_response(request: HttpRequest, problem: ApiProblem) -> HttpResponse:
    response = api.create_response(
        request,
        {"error": problem.code, "detail": problem.detail, **problem.extra},
        status=problem.status,
    )
    if "retry_after" in problem.extra:
        response["Retry-After"] = str(problem.extra["retry_after"])
    return response


@api.exception_handler(ApiProblem)
def _api_problem(request: HttpRequest, exc: ApiProblem) -> HttpResponse:
    return _problem_response(request, exc)


@api.exception_handler(InvalidJSON)
def _invalid_json(request: HttpRequest, exc: InvalidJSON) -> HttpResponse:
    return _problem_response(request, ApiProblem(400, "invalid_json", str(exc)))


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = _problem_response(
        request,
        ApiProblem(
            401,
            "unauthenticated",
            "send a valid, unrevoked service key: Authorization: Bearer <key> or X-API-Key",
        ),
    )
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(NinjaValidationError)
def _invalid_request(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors = [
        {
            "field": ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "payload")),
            "problem": error.get("msg", ""),
        }
        for error in exc.errors
    ]
    detail = "; ".join(f"{e['field'] or 'body'}: {e['problem']}" for e in errors)
    return _problem_response(request, ApiProblem(422, "invalid_request", detail, errors=errors))


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    cause = exc.__cause__
    if isinstance(cause, InvalidJSON):
        return _invalid_json(request, cause)
    return _problem_response(request, ApiProblem(exc.status_code, "error", str(exc)))


def _scope(request: HttpRequest, allowed: bool, what: str) -> ServiceKey:
    key: ServiceKey = request.auth
    if not allowed:
        raise ApiProblem(403, "forbidden", f"this key may not {what}")
    return key


# --- notifications -----------------------------------------------------------------------------


class NotificationIn(Schema):
    model_config = ConfigDict(extra="forbid")

    event: str = Field(description="The event's key, e.g. order-shipped", max_length=100)
    recipients: list[dict[str, Any]] = Field(
        description="Who gets it: each a mapping of addresses per channel (email, phone, "
        "push_token …) with an optional user_id, language, tz",
        min_length=1,
        max_length=1000,
    )
    context: dict[str, Any] = Field(default_factory=dict, description="The event's variables")
    channels: list[str] | None = Field(None, description="Only these channels (keys)")
    language: str | None = Field(
        None, max_length=16, description="For recipients that name no language"
    )
    scheduled_at: dt.datetime | None = Field(None, description="When (with a timezone)")
    send_immediately: bool = False
    tag: str = ""
    extra: dict[str, Any] | None = None
    trigger: str | None = Field(None, description="Override the event's trigger behaviour")
    strict: bool = Field(False, description="A refused duplicate is a 409, not a skip")
    max_attempts: int | None = None
    skip_invalid: bool = Field(False, description="Skip malformed addresses instead of 400")


class MessageOut(Schema):
    id: str
    event: str
    channel: str
    address: str
    user_id: int | None
    status: str
    delivery_status: str
    status_reason: str
    error: str
    attempts: int
    language: str
    tag: str
    idempotency_key: str
    scheduled_at: dt.datetime | None
    sent_at: dt.datetime | None
    created_at: dt.datetime | None


class SkippedOut(Schema):
    recipient: Any
    channel: str
    reason: str


class NotificationOut(Schema):
    messages: list[MessageOut]
    skipped: list[SkippedOut]


class ProblemOut(Schema):
    error: str
    detail: str


def _message_json(message: Message, cat: Catalog) -> dict:
    event = cat.events_by_id.get(message.event_id)
    channel = cat.channels_by_id.get(message.channel_id)
    return {
        "id": str(message.uuid),
        "event": event.key if event else "",
        "channel": channel.key if channel else "",
        "address": message.address,
        "user_id": message.user_id,
        "status": message.status,
        "delivery_status": message.delivery_status,
        "status_reason": message.status_reason,
        "error": message.last_error,
        "attempts": message.attempts,
        "language": message.language,
        "tag": message.tag,
        "idempotency_key": _API_KEY_PREFIX.sub("", message.idempotency_key),
        "scheduled_at": message.scheduled_at,
        "sent_at": message.sent_at,
        "created_at": message.created_at,
    }


def _messages_json(messages: list[Message]) -> list[dict]:
    cat = catalog()  # event and channel keys without a query
    return [_message_json(m, cat) for m in messages]


def _idempotency_key(request: HttpRequest, key: ServiceKey, value: str | None) -> str:
    """The stored key: the client's, under this service key's prefix (one service cannot
    replay or read another's requests)."""
    if not value:
        return ""
    if len(value) > IDEMPOTENCY_KEY_MAX or not value.isascii() or not value.isprintable():
        raise ApiProblem(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be printable ASCII of at most {IDEMPOTENCY_KEY_MAX} characters",
        )
    return f"api:{key.prefix}:{value}"


@api.post(
    "/notifications",
    response={
        202: NotificationOut,
        400: ProblemOut,
        403: ProblemOut,
        404: ProblemOut,
        409: ProblemOut,
        422: ProblemOut,
        429: ProblemOut,
    },
    summary="Send a notification (notify())",
)
def notifications_create(request: HttpRequest, payload: NotificationIn):
    """Write one message per recipient address and channel and send them. With an
    ``Idempotency-Key`` header, the same key and body answer the first request's result
    (nothing is sent twice); the same key with another body is a 409."""
    key = _scope(request, request.auth.can_trigger, "send notifications")
    if not may_trigger(key, payload.event):
        raise ApiProblem(
            403,
            "forbidden",
            f"this key may not trigger event {payload.event!r}",
            event=payload.event,
        )
    idempotency_key = _idempotency_key(request, key, request.headers.get("Idempotency-Key"))
    recipients = payload.recipients
    if payload.language:
        recipients = [{"language": payload.language, **r} for r in recipients]
    try:
        result = notify(
            payload.event,
            recipients,
            payload.context,
            channels=payload.channels,
            scheduled_at=payload.scheduled_at,
            send_immediately=payload.send_immediately,
            tag=payload.tag,
            extra=payload.extra,
            trigger=payload.trigger,
            strict=payload.strict,
            max_attempts=payload.max_attempts,
            skip_invalid=payload.skip_invalid,
            idempotency_key=idempotency_key,
        )
    except UnknownEvent as error:
        raise ApiProblem(404, "unknown_event", str(error), event=error.key) from None
    except UnknownChannel as error:
        raise ApiProblem(422, "unknown_channel", str(error), channels=error.keys) from None
    except MissingVariables as error:
        raise ApiProblem(422, "missing_variables", str(error), missing=error.names) from None
    except InvalidArgument as error:
        raise ApiProblem(422, "invalid_argument", str(error), argument=error.argument) from None
    except InvalidContext as error:
        raise ApiProblem(422, "invalid_context", str(error)) from None
    except InvalidRecipient as error:
        raise ApiProblem(400, "invalid_recipient", str(error), index=error.index) from None
    except IdempotencyConflict:
        raise ApiProblem(
            409,
            "idempotency_conflict",
            "this Idempotency-Key was used before with a different body; use a new key for "
            "a different notification",
        ) from None
    except DuplicateNotification as error:
        raise ApiProblem(409, "duplicate", str(error)) from None
    return Status(
        202,
        {
            "messages": _messages_json(result.messages),
            "skipped": [
                {"recipient": s.recipient, "channel": s.channel, "reason": s.reason}
                for s in result.skipped
            ],
        },
    )


# --- messages ----------------------------------------------------------------------------------


@api.get(
    "/messages/{message_id}",
    response={200: MessageOut, 403: ProblemOut, 404: ProblemOut},
    summary="A message and its status",
)
def message_get(request: HttpRequest, message_id: str):
    _scope(request, request.auth.can_read_messages, "read messages")
    try:
        uuid = uuid_module.UUID(message_id)
    except ValueError:
        raise ApiProblem(404, "not_found", f"no message {message_id!r}") from None
    message = Message.objects.filter(uuid=uuid).first()
    if message is None:
        raise ApiProblem(404, "not_found", f"no message {message_id!r}")
    return _messages_json([message])[0]


class MessageFilter(Schema):
    idempotency_key: str | None = Field(None, max_length=IDEMPOTENCY_KEY_MAX)
    user_id: int | None = Field(None, gt=0, lt=2**63)
    address: str | None = Field(None, max_length=2048)
    limit: int = Field(50, ge=1, le=LIST_LIMIT)


class MessageList(Schema):
    messages: list[MessageOut]


@api.get(
    "/messages",
    response={200: MessageList, 400: ProblemOut, 403: ProblemOut},
    summary="Messages of one request (idempotency key) or one recipient, newest first",
)
def messages_list(request: HttpRequest, filters: Query[MessageFilter]):
    key = _scope(request, request.auth.can_read_messages, "read messages")
    query = Message.objects.all()
    if filters.idempotency_key:
        query = query.filter(idempotency_key=f"api:{key.prefix}:{filters.idempotency_key}")
    if filters.user_id:
        query = query.filter(user_id=filters.user_id)
    if filters.address:
        query = query.filter(address=filters.address.strip())
    if not (filters.idempotency_key or filters.user_id or filters.address):
        raise ApiProblem(
            400, "filter_required", "give idempotency_key, user_id or address to list messages"
        )
    return {"messages": _messages_json(list(query.order_by("-id")[: filters.limit]))}


# --- opt-outs ----------------------------------------------------------------------------------


class OptOutOut(Schema):
    id: int
    user_id: int | None
    address: str
    scope: str
    event: str | None
    channel: str | None
    kind: str
    marketing: bool
    reason: str
    source: str
    active: bool
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class OptOutIn(Schema):
    model_config = ConfigDict(extra="forbid")

    user_id: int | None = Field(None, gt=0, lt=2**63)
    address: str | None = Field(None, max_length=512)
    event: str | None = Field(None, description="Only this event (its key)")
    channel: str | None = Field(None, description="Only this channel (its key)")
    kind: Literal["", "email", "sms", "push", "chat", "inbox"] = Field(
        "", description="Every channel of this kind"
    )
    marketing: bool = Field(False, description="Every marketing event")
    reason: str = Field("", max_length=255)


class OptOutFilter(Schema):
    user_id: int | None = Field(None, gt=0, lt=2**63)
    address: str | None = Field(None, max_length=512)
    active: bool = True


class OptOutList(Schema):
    optouts: list[OptOutOut]


def _optout_json(optout: OptOut) -> dict:
    return {
        "id": optout.pk,
        "user_id": optout.user_id,
        "address": optout.address,
        "scope": optout.scope,
        "event": optout.event.key if optout.event_id else None,
        "channel": optout.channel.key if optout.channel_id else None,
        "kind": optout.kind,
        "marketing": optout.marketing,
        "reason": optout.reason,
        "source": optout.source,
        "active": optout.is_active,
        "created_at": optout.created_at,
        "revoked_at": optout.revoked_at,
    }


@api.get(
    "/optouts",
    response={200: OptOutList, 400: ProblemOut, 403: ProblemOut},
    summary="A person's opt-outs (in force, or with active=false also the revoked ones)",
)
def optouts_list(request: HttpRequest, filters: Query[OptOutFilter]):
    _scope(request, request.auth.can_manage_optouts, "manage opt-outs")
    if not (filters.user_id or filters.address):
        raise ApiProblem(400, "filter_required", "give user_id or address")
    query = OptOut.objects.select_related("event", "channel")
    if filters.active:
        query = query.active()
    if filters.user_id:
        query = query.filter(user_id=filters.user_id)
    if filters.address:
        query = query.filter(address=filters.address.strip().lower())
    return {"optouts": [_optout_json(o) for o in query[:LIST_LIMIT]]}


@api.post(
    "/optouts",
    response={201: OptOutOut, 200: OptOutOut, 403: ProblemOut, 404: ProblemOut, 422: ProblemOut},
    summary="Opt a person out (the same opt-out in force already: 200 with it)",
)
def optouts_create(request: HttpRequest, payload: OptOutIn):
    _scope(request, request.auth.can_manage_optouts, "manage opt-outs")
    address = (payload.address or "").strip().lower()
    if not payload.user_id and not address:
        raise ApiProblem(422, "invalid_request", "give user_id or address (or both)")
    if payload.user_id and not get_user_model().objects.filter(pk=payload.user_id).exists():
        raise ApiProblem(404, "unknown_user", f"no user {payload.user_id}")
    if payload.channel and payload.kind:
        raise ApiProblem(422, "invalid_request", "name a channel or a kind of channel, not both")
    event = channel = None
    if payload.event:
        event = Event.objects.filter(key=payload.event).first()
        if event is None:
            raise ApiProblem(
                404, "unknown_event", f"no event {payload.event!r}", event=payload.event
            )
    if payload.channel:
        channel = ChannelConfig.objects.filter(key=payload.channel).first()
        if channel is None:
            raise ApiProblem(
                404, "unknown_channel", f"no channel {payload.channel!r}", channel=payload.channel
            )
    if payload.kind and payload.kind not in PERSON_KINDS:  # pragma: no cover - the Literal
        raise ApiProblem(422, "invalid_request", f"unknown kind {payload.kind!r}")
    scope = {
        "user_id": payload.user_id,
        "address": address,
        "event": event,
        "channel": channel,
        "kind": payload.kind,
        "marketing": payload.marketing,
    }
    try:
        with transaction.atomic():
            optout, created = OptOut.objects.active().get_or_create(
                **scope,
                defaults={"reason": payload.reason, "source": OptOut.Source.API},
            )
    except IntegrityError as error:
        raise ApiProblem(422, "invalid_request", f"the opt-out cannot be stored: {error}") from None
    return Status(201 if created else 200, _optout_json(optout))


@api.post(
    "/optouts/{optout_id}/revoke",
    response={200: OptOutOut, 403: ProblemOut, 404: ProblemOut},
    summary="Turn an opt-out back off (it stays on record, revoked)",
)
def optouts_revoke(request: HttpRequest, optout_id: int):
    _scope(request, request.auth.can_manage_optouts, "manage opt-outs")
    optout = OptOut.objects.select_related("event", "channel").filter(pk=optout_id).first()
    if optout is None:
        raise ApiProblem(404, "not_found", f"no opt-out {optout_id}")
    if optout.revoked_at is None:
        optout.revoked_at = timezone.now()
        optout.revoked_source = OptOut.Source.API
        optout.save(update_fields=["revoked_at", "revoked_source"])
    return _optout_json(optout)
