"""The public call: one event, its recipients and context → outbox rows, dispatched after
commit.

``notify()`` takes only the options a developer of the host site uses. It checks every
argument before anything is read or written (``campaigns.domain.context`` and the checks
below), then loads the event, plans (``plan``: recipients x channels → messages and skips, no
writes), applies the trigger behaviour and idempotency (``triggers``), and writes all rows in
one transaction (``messages_write``), whose commit enqueues their dispatch. It never talks to
a provider.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from campaigns.domain.context import (
    BIGINT,
    EARLIEST,
    LATEST,
    bool_check,
    context_validate,
    plain,
    recipients_normalize,
    show,
    text_check,
    text_problem,
)
from campaigns.domain.states import MessageStatus
from campaigns.exceptions import DuplicateNotification, InvalidArgument, UnknownTemplate
from campaigns.models import Event, Message, MessageRelatedObject, NotifyRequest, Template
from campaigns.models.events import Trigger
from campaigns.outbox.bulk import rows_insert
from campaigns.outbox.catalog import catalog
from campaigns.outbox.decisions import decisions_record
from campaigns.outbox.digests import digests_plan, digests_write
from campaigns.outbox.escalation import Step, person_key, steps_check
from campaigns.outbox.plan import (
    PER_CONTENT,
    NotifyResult,
    PlanOptions,
    Skipped,
    event_load,
    plan,
)
from campaigns.outbox.queueing import TRANSACTIONAL, dispatch_after_commit
from campaigns.outbox.transitions import planned_due_now
from campaigns.outbox.triggers import idempotency_claim, payload_hash, triggers_apply

__all__ = ["NotifyResult", "Skipped", "messages_write", "notify", "send_template"]

_MAX_ATTEMPTS = 32767  # Message.max_attempts is a smallint
_TAG_LENGTH = Message._meta.get_field("tag").max_length
_IDEMPOTENCY_KEY_LENGTH = min(
    Message._meta.get_field("idempotency_key").max_length,
    NotifyRequest._meta.get_field("key").max_length,
)
_OBJECT_ID_LENGTH = min(
    Message._meta.get_field("object_id").max_length,
    MessageRelatedObject._meta.get_field("object_id").max_length,
)
_SLUG_LENGTH = Template._meta.get_field("slug").max_length


def notify(
    event: str | Event,
    recipients: Any,
    context: Mapping[str, Any] | None = None,
    *,
    channels: list[str] | None = None,
    scheduled_at: dt.datetime | None = None,
    expires_at: dt.datetime | dt.timedelta | None = None,
    tag: str = "",
    extra: Mapping[str, Any] | None = None,
    content: models.Model | None = None,
    related_objects: Iterable[models.Model] = (),
    trigger_user: Any = None,
    trigger: str | None = None,
    strict: bool = False,
    idempotency_key: str = "",
    max_attempts: int | None = None,
    send_immediately: bool = False,
    skip_invalid: bool = False,
    then: list | None = None,
) -> NotifyResult:
    """Write one message per recipient address and channel, and enqueue their dispatch.

    Raises UnknownEvent, UnknownChannel, MissingVariables / InvalidContext, InvalidRecipient or
    InvalidArgument (naming the argument) with nothing written: every argument is checked
    before the first write. Recipients with no address on a channel, opted out, inactive, or
    without a template in any fallback language are returned in ``result.skipped`` with the
    reason. With ``skip_invalid=True`` a malformed address is skipped too, instead of raising.

    Messages are due at ``scheduled_at`` (or now), moved to the next moment inside the
    event's and the channel's availability windows in the recipient's timezone, unless
    ``send_immediately`` (on the call or a recipient) says otherwise.

    A message not sent by ``expires_at`` (a time, or a ``timedelta`` counted from when the
    call makes it due: ``scheduled_at`` or now; default: the event's ``expires_after``) is
    cancelled as "expired" instead of going out late.

    A digested event's occurrences (the event's ``digest`` frequency, or the one each
    recipient chose where the event lets them) are added to their window's message, one per
    recipient, channel and window, scheduled at the window's end (``outbox.digests``).

    ``trigger`` overrides the event's trigger behaviour; a trigger a once-behaviour refuses is
    skipped as "duplicate", or raises DuplicateNotification with ``strict=True``. The same
    ``idempotency_key`` with the same payload returns the first call's result.

    ``then`` escalates (README "Fallback and escalation"): ``then=[("email", "15m"), ("sms",
    "1h")]`` sends on ``channels`` first, then on email if that was not seen within 15
    minutes (or failed for good), then by SMS after an hour; a step ``(channel, delay,
    "delivered")`` goes only if the earlier message was not delivered. Its steps are written
    with the first messages and returned with them.
    """
    return _notify(
        event,
        recipients,
        context,
        channels=channels,
        scheduled_at=scheduled_at,
        expires_at=expires_at,
        tag=tag,
        extra=extra,
        content=content,
        related_objects=related_objects,
        trigger_user=trigger_user,
        trigger=trigger,
        strict=strict,
        idempotency_key=idempotency_key,
        max_attempts=max_attempts,
        send_immediately=send_immediately,
        skip_invalid=skip_invalid,
        then=then,
        template=None,
    )


def send_template(
    recipients: Any, slug: str, context: Mapping[str, Any] | None = None, **options: Any
) -> NotifyResult:
    """A transactional one-off: send the template with this slug (its event, channel and
    language), with the same validation and options as ``notify()``."""
    slug = text_check("slug", slug, max_length=_SLUG_LENGTH)
    unknown = sorted(set(options) - SEND_TEMPLATE_OPTIONS)
    if unknown:
        raise InvalidArgument(
            unknown[0],
            f"is not an option of send_template(); its options are: "
            f"{', '.join(sorted(SEND_TEMPLATE_OPTIONS))}",
        )
    template = (
        Template.objects.select_related("event", "channel")
        .filter(slug=slug, is_active=True, published__isnull=False)
        .first()
    )
    if template is None:
        raise UnknownTemplate(slug)
    return _notify(template.event, recipients, context, template=template, **options)


#: What send_template() passes on: notify()'s options (the template is its own).
SEND_TEMPLATE_OPTIONS = frozenset(
    name
    for name, parameter in inspect.signature(notify).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)


def _notify(
    event: Any,
    recipients: Any,
    context: Any,
    *,
    channels: Any = None,
    scheduled_at: Any = None,
    expires_at: Any = None,
    tag: Any = "",
    extra: Any = None,
    content: Any = None,
    related_objects: Any = (),
    trigger_user: Any = None,
    trigger: Any = None,
    strict: Any = False,
    idempotency_key: Any = "",
    max_attempts: Any = None,
    send_immediately: Any = False,
    skip_invalid: Any = False,
    then: Any = None,
    template: Template | None,
) -> NotifyResult:
    now = timezone.now()
    hashed_tag = tag  # as given: an idempotency key's payload hash must not change
    for name, value in (
        ("strict", strict),
        ("send_immediately", send_immediately),
        ("skip_invalid", skip_invalid),
    ):
        bool_check(name, value)
    channels = _channels_check(channels)
    _scheduled_at_check(scheduled_at)
    _expires_at_check(expires_at, scheduled_at=scheduled_at, now=now)
    tag = text_check("tag", tag, max_length=_TAG_LENGTH, allow_none=True)
    idempotency_key = text_check(
        "idempotency_key", idempotency_key, max_length=_IDEMPOTENCY_KEY_LENGTH
    )
    if extra is not None and not isinstance(extra, Mapping):
        raise InvalidArgument("extra", f"must be a mapping or None, got {type(extra).__name__}")
    extra = plain(dict(extra or {}), "", error=_extra_error, argument="extra")
    if trigger is not None and (not isinstance(trigger, str) or trigger not in Trigger.values):
        raise InvalidArgument(
            "trigger", f"{show(trigger)} is unknown; one of: {', '.join(Trigger.values)}"
        )
    _max_attempts_check(max_attempts)
    content_ref = _content_ref("content", content) if content is not None else None
    related = _related_check(related_objects)
    trigger_user_id = _trigger_user_id(trigger_user)
    steps = steps_check(then)
    if steps and channels is None and template is None:
        raise InvalidArgument("then", "needs channels= too: the channels of the first step")
    first = {template.channel.key} if template is not None else set(_keys(channels))
    for step in steps:
        if step.channel in first:
            raise InvalidArgument(
                "then", f"the channel {step.channel!r} is in channels= already (the first step)"
            )

    cat = catalog()
    event = event_load(event, cat=cat)
    context = context_validate(event=event, context=context)
    if then is None and event.pk in cat.escalations:  # the event's own steps (the admin's)
        steps, channels = _event_steps(event, cat=cat, channels=channels, template=template)
    behaviour = trigger or event.trigger
    if behaviour in PER_CONTENT and content is None:
        raise InvalidArgument("trigger", f"{behaviour!r} needs content= (the object it is about)")
    people = recipients_normalize(recipients)
    payload = idempotency_key and payload_hash(  # what a repeated key must match
        event,
        people,
        context,
        [template.channel.key] if template is not None else channels,
        scheduled_at,
        hashed_tag,
        extra,
        content_ref,
        related,
        behaviour,
        template,
        *([[step.as_json() for step in steps]] if steps else []),
    )
    options = PlanOptions(
        scheduled_at=scheduled_at,
        expires_at=expires_at,
        send_immediately=send_immediately,
        skip_invalid=skip_invalid,
        max_attempts=max_attempts,
        tag=tag,
        extra=extra,
        content_ref=content_ref,
        trigger_user_id=trigger_user_id,
        trigger_user_unchecked=isinstance(trigger_user, int),
        behaviour=behaviour,
        idempotency_key=idempotency_key,
        template=template,
    )
    planned = plan(
        event=event,
        people=people,
        context=context,
        channels=channels,
        options=options,
        now=now,
        cat=cat,
    )
    messages, skipped = planned.messages, planned.skipped
    digested = []
    if event.digested:  # a digested event's occurrences go into their windows' messages
        digested, messages = digests_plan(messages, event=event, now=now)
    later = steps_plan(
        steps, event=event, people=people, context=context, options=options, now=now, cat=cat
    )
    for step_plan in later:
        skipped.extend(step_plan.skipped)
    if (
        not steps
        and not idempotency_key
        and not digested
        and not skipped
        and not related
        and not any(m.dedupe_key for m in messages)
    ):
        # One statement writes every row: atomic without a transaction of its own (and the
        # dispatch is enqueued when it is done, or when the caller's transaction commits).
        # Skips go with their decision trail, in one transaction with the messages.
        messages_write(messages)
        return NotifyResult(messages=messages, skipped=skipped)
    try:
        with transaction.atomic():
            if idempotency_key:
                earlier = idempotency_claim(idempotency_key, payload, skipped)
                if earlier is not None:
                    return earlier
            messages, duplicates = triggers_apply(messages, behaviour=behaviour, now=now)
            if duplicates and strict:
                raise DuplicateNotification(event.key, [m.dedupe_key for m, _ in duplicates])
            skipped.extend(Skipped(m.recipient, m.channel.key, reason) for m, reason in duplicates)
            if idempotency_key:
                NotifyRequest.objects.filter(key=idempotency_key).update(
                    skipped=[
                        {"recipient": s.recipient, "channel": s.channel, "reason": s.reason}
                        for s in skipped
                    ]
                )
            messages_write(messages, related=related)
            if later:
                messages += _steps_write(
                    messages, later, dropped=duplicates, related=related, now=now
                )
            messages += digests_write(digested, event=event, now=now)
            decisions_record(skipped, event=event)
    except IntegrityError as error:
        if (
            idempotency_key
            and "key" in str(error)
            and NotifyRequest.objects.filter(key=idempotency_key).exists()
        ):
            # Another call with the same key committed first: answer with its result.
            return idempotency_claim(idempotency_key, payload, skipped)
        raise
    return NotifyResult(messages=messages, skipped=skipped)


def messages_write(
    messages: list[Message],
    *,
    related: list[tuple[ContentType, str]] = (),
    lane: str = TRANSACTIONAL,
) -> list[Message]:
    """Insert planned messages (and their related objects) in the current transaction, and
    hand those due now to the workers of ``lane`` once it commits."""
    rows_insert(Message, messages)
    if related:
        MessageRelatedObject.objects.bulk_create(
            [
                MessageRelatedObject(message=m, content_type=ct, object_id=pk)
                for m in messages
                for ct, pk in related
            ],
            batch_size=2000,
        )
    ids_by_channel: dict[int, list[int]] = defaultdict(list)
    for message in messages:
        if message.status == MessageStatus.QUEUED:
            ids_by_channel[message.channel_id].append(message.pk)
    dispatch_after_commit(ids_by_channel, lane=lane)
    return messages


def steps_plan(
    steps: list[Step],
    *,
    event: Event,
    people: list[dict[str, Any]],
    context: dict[str, Any],
    options: PlanOptions,
    now: dt.datetime,
    cat: Any,
) -> list[NotifyResult]:
    """The later steps of an escalation, planned (one read of the recipients each): due at
    the call's time (or ``scheduled_at``) plus each step's delay, with no trigger key of
    their own (the first step's decides), each waiting for its condition."""
    start = max(now, options.scheduled_at) if options.scheduled_at else now
    planned = []
    for step in steps:
        result = plan(
            event=event,
            people=people,
            context=context,
            channels=[step.channel],
            options=dataclasses.replace(options, scheduled_at=start + step.delay, template=None),
            now=now,
            cat=cat,
        )
        for message in result.messages:
            message.escalation_condition = step.condition
            message.dedupe_key = ""
        planned.append(result)
    return planned


def _event_steps(
    event: Event, *, cat: Any, channels: list[str] | None, template: Template | None
) -> tuple[list[Step], list[str] | None]:
    """The steps an event's admin set, for a call that gives no ``then=``: those on channels
    the call does not send on first; and, for a call that names no channels, the first step's
    channels: every channel the event has templates for but its steps'."""
    first = {template.channel.key} if template is not None else set(_keys(channels))
    steps = [
        Step(key, dt.timedelta(minutes=minutes), condition)
        for key, minutes, condition in cat.escalations[event.pk]
        if key not in first
    ]
    if channels is None and template is None:
        later = {step.channel for step in steps}
        channels = [
            channel.key
            for channel in cat.active.values()
            if channel.key not in later and cat.templates.get((event.pk, channel.pk))
        ]
    return steps, channels


def _steps_write(
    first: list[Message],
    later: list[NotifyResult],
    *,
    dropped: list[tuple[Message, str]],
    related: list[tuple[ContentType, str]],
    now: dt.datetime,
) -> list[Message]:
    """Write the later steps, each pointing at the step before it for the same recipient
    (the newest step that has a message for them). A recipient the first step wrote nothing
    for because its trigger refused it gets no later step either; one it could not be planned
    for (no address on the first channel …) gets the next step at once."""
    refused = {person_key(m) for m, _ in dropped}
    before: dict[str, Message] = {}
    for message in first:
        before.setdefault(person_key(message), message)
    written: list[Message] = []
    for result in later:
        step, orphans, current = [], [], {}
        for message in result.messages:
            key = person_key(message)
            if key in refused:
                continue
            earlier = before.get(key)
            if earlier is None:
                orphans.append(message)
            else:
                message.escalates_from_id = earlier.pk
                message.status_reason = ""
            current.setdefault(key, message)
            step.append(message)
        planned_due_now([m for m in orphans if m.status == MessageStatus.SCHEDULED], now=now)
        messages_write(step, related=related)
        before.update(current)
        written += step
    return written


# --- argument checks (no queries) -----------------------------------------------------------


def _keys(channels: Any) -> list[str]:
    if channels is None:
        return []
    return [channels] if isinstance(channels, str) else list(channels)


def _extra_error(message: str) -> InvalidArgument:
    return InvalidArgument("extra", message.removeprefix("extra "))


def _channels_check(channels: Any) -> list[str] | None:
    if channels is None:
        return None
    keys = [channels] if isinstance(channels, str) else channels
    if not isinstance(keys, list | tuple | set | frozenset) or not all(
        isinstance(key, str) for key in keys
    ):
        raise InvalidArgument(
            "channels", f"must be None, a channel key or a list of keys, got {show(channels)}"
        )
    if isinstance(keys, set | frozenset):  # a stable order, for the payload hash
        return sorted(keys)
    return channels if isinstance(channels, str) else list(keys)


def _moment_check(name: str, value: Any, *, takes: str) -> None:
    """``value`` is a timezone-aware datetime in the years delivery times can be computed
    for; ``takes`` says what the argument takes, for the error about another type."""
    if not isinstance(value, dt.datetime):
        raise InvalidArgument(name, f"must be {takes}, got {type(value).__name__}")
    if timezone.is_naive(value):
        raise InvalidArgument(name, "must be timezone-aware")
    if not EARLIEST <= value < LATEST:
        raise InvalidArgument(
            name,
            f"{value.isoformat()} is outside the years 2 to 9997, where delivery "
            "times can be computed",
        )


def _scheduled_at_check(scheduled_at: Any) -> None:
    if scheduled_at is not None:
        _moment_check("scheduled_at", scheduled_at, takes="a timezone-aware datetime or None")


def _expires_at_check(expires_at: Any, *, scheduled_at: Any, now: dt.datetime) -> None:
    if expires_at is None:
        return
    if isinstance(expires_at, dt.timedelta):
        if expires_at <= dt.timedelta(0):
            raise InvalidArgument("expires_at", f"must be a positive duration, got {expires_at}")
        if expires_at > LATEST - EARLIEST:
            raise InvalidArgument("expires_at", f"{expires_at} is too long")
        return
    _moment_check("expires_at", expires_at, takes="a timezone-aware datetime, a timedelta or None")
    due = max(now, scheduled_at) if scheduled_at is not None else now
    if expires_at <= due:
        raise InvalidArgument(
            "expires_at",
            f"{expires_at.isoformat()} is not after {due.isoformat()}, when the message is "
            "due: it would never be sent",
        )


def _max_attempts_check(max_attempts: Any) -> None:
    if max_attempts is not None and (
        isinstance(max_attempts, bool)
        or not isinstance(max_attempts, int)
        or not 1 <= max_attempts <= _MAX_ATTEMPTS
    ):
        raise InvalidArgument(
            "max_attempts",
            f"must be a whole number from 1 to {_MAX_ATTEMPTS}, got {show(max_attempts)}",
        )


def _related_check(related_objects: Any) -> list[tuple[ContentType, str]]:
    if isinstance(related_objects, str | bytes | Mapping) or not isinstance(
        related_objects, Iterable
    ):
        raise InvalidArgument(
            "related_objects",
            f"must be a list of saved model instances, got {type(related_objects).__name__}",
        )
    return [_content_ref("related_objects", obj) for obj in related_objects]


def _trigger_user_id(trigger_user: Any) -> int | None:
    """The id of ``trigger_user`` (a saved user, or a user id); whether a user has that id is
    checked with the recipients' users, in the same query."""
    if trigger_user is None:
        return None
    if isinstance(trigger_user, get_user_model()):
        if trigger_user.pk is None:
            raise InvalidArgument("trigger_user", "is a user that was never saved")
        return trigger_user.pk
    if isinstance(trigger_user, bool) or not isinstance(trigger_user, int):
        raise InvalidArgument(
            "trigger_user", f"must be a user or a user id, got {type(trigger_user).__name__}"
        )
    if not 0 < trigger_user < BIGINT:
        raise InvalidArgument("trigger_user", f"{show(trigger_user)} is not a user id")
    return trigger_user


def _content_ref(argument: str, obj: Any) -> tuple[ContentType, str]:
    """(content type, id) of a saved model instance; InvalidArgument naming ``argument``."""
    if isinstance(obj, models.Model) and obj.pk is None:
        raise InvalidArgument(argument, f"has a {type(obj).__name__} that was never saved")
    if not isinstance(obj, models.Model):
        raise InvalidArgument(argument, f"must be saved model instances, got {show(obj)}")
    object_id = str(obj.pk)
    if len(object_id) > _OBJECT_ID_LENGTH or text_problem(object_id):
        raise InvalidArgument(
            argument, f"has a {type(obj).__name__} whose id {show(object_id)} cannot be stored"
        )
    return ContentType.objects.get_for_model(obj), object_id
