"""The fan-out: one call turns an event, recipients and a context into outbox rows.

It validates everything before it writes anything, reads what it needs in a fixed number of
queries whatever the number of recipients, writes all rows with ``bulk_create`` in one
transaction, and enqueues dispatch jobs after commit. It never talks to a provider.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from channels.models import ChannelConfig

from ..conf import app_settings
from ..exceptions import (
    DuplicateNotification,
    IdempotencyConflict,
    InvalidContext,
    InvalidRecipient,
    MissingVariables,
    UnknownChannel,
    UnknownEvent,
    UnknownTemplate,
)
from ..models import (
    ChannelAddress,
    Event,
    Message,
    MessageRelatedObject,
    MessageStatus,
    NotifyRequest,
    Template,
)
from ..models.events import Trigger
from ..models.messages import ACTIVE
from ..queue import enqueue_dispatch_on_commit
from .availability import recipient_delivery_time, recipient_timezone, windows_for
from .bulk import rows_insert
from .optouts import optouts_matcher

SEND_ONCE = {Trigger.SEND_ONCE, Trigger.SEND_ONCE_PER_CONTENT}

#: What every recipient carries to its templates (``{{ recipient.name }}`` …) whoever gave it:
#: a user's are filled in from the user and their profile, and what is still unknown is empty
#: (language: the message's, tz: the site's). The preview's sample recipient has these keys.
RECIPIENT_FIELDS = ("name", "email", "language", "tz")


@dataclass(frozen=True, slots=True)
class Skipped:
    recipient: dict[str, Any]
    channel: str
    reason: str


@dataclass(slots=True)
class NotifyResult:
    messages: list[Message] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.messages)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for message in self.messages:
            counts[message.status] += 1
        for skip in self.skipped:
            counts[f"skipped: {skip.reason}"] += 1
        return dict(counts)


# --- validation ----------------------------------------------------------------------------

_PLAIN_SCALARS = (str, int, float, bool, type(None))
_CONVERTIBLE = (dt.datetime, dt.date, dt.time, Decimal, UUID)


def context_validate(*, event: Event, context: Any) -> dict[str, Any]:
    """Return a JSON-safe copy of ``context``; dates, decimals and UUIDs become strings.
    Anything else (model instances, objects, sets …) is refused, named by its path."""
    if not isinstance(context, Mapping):
        raise InvalidContext(f"context must be a mapping, got {type(context).__name__}")
    missing = [name for name in event.required_variables if name not in context]
    if missing:
        raise MissingVariables(event.key, missing)
    return {str(key): _plain(value, str(key)) for key, value in context.items()}


def _plain(value: Any, path: str) -> Any:
    if isinstance(value, _PLAIN_SCALARS):
        if isinstance(value, float) and value != value:  # NaN is not JSON
            raise InvalidContext(f"context value {path} is NaN, which JSON cannot hold")
        return value
    if isinstance(value, _CONVERTIBLE):
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise InvalidContext(
        f"context value {path} is a {type(value).__module__}.{type(value).__qualname__}, "
        "not plain data (str, number, bool, date, list, dict); pass its fields instead"
    )


def recipients_normalize(recipients: Any) -> list[dict[str, Any]]:
    """Mappings are copied; user objects become ``{"user_id", "email", "name"}``."""
    user_model = get_user_model()
    if isinstance(recipients, (Mapping, user_model)):
        recipients = [recipients]
    elif isinstance(recipients, (str, bytes)) or not isinstance(recipients, Iterable):
        raise InvalidRecipient(0, f"recipients must be mappings or users, got {recipients!r}")
    normalized = []
    for index, recipient in enumerate(recipients):
        if isinstance(recipient, user_model):
            item = {
                "user_id": recipient.pk,
                "email": getattr(recipient, "email", "") or "",
                "name": recipient.get_full_name() or recipient.get_username(),
            }
        elif isinstance(recipient, Mapping):
            item = {str(k): v for k, v in recipient.items()}
        else:
            raise InvalidRecipient(
                index, f"expected a mapping or a user, got {type(recipient).__name__}"
            )
        if item.get("user_id") is not None:
            try:
                item["user_id"] = int(item["user_id"])
            except (TypeError, ValueError):
                raise InvalidRecipient(index, f"user_id {item['user_id']!r} is not an id") from None
        try:
            json.dumps(item)
        except (TypeError, ValueError) as error:
            raise InvalidRecipient(index, f"recipient data is not plain data: {error}") from None
        if item.get("language"):
            item["language"] = str(item["language"]).strip().lower().replace("_", "-")
        normalized.append(item)
    return normalized


def _channels_select(*, event: Event, keys: list[str] | None) -> list[ChannelConfig]:
    active = {channel.key: channel for channel in ChannelConfig.objects.filter(is_active=True)}
    if keys is None:
        return list(active.values())
    if isinstance(keys, str):
        keys = [keys]
    unknown = [key for key in keys if key not in active]
    if unknown:
        raise UnknownChannel(unknown, known=sorted(active))
    return [active[key] for key in dict.fromkeys(keys)]


def language_candidates(language: str | None, event: Event) -> list[str]:
    """pt-br → pt → the event's default language → settings.LANGUAGE_CODE."""
    candidates = []
    if language:
        candidates.append(language)
        if "-" in language:
            candidates.append(language.split("-", 1)[0])
    for fallback in (event.default_language, settings.LANGUAGE_CODE):
        if fallback:
            candidates.append(fallback.lower())
    return list(dict.fromkeys(candidates))


# --- the use case --------------------------------------------------------------------------

ONCE_PREFIX = {
    Trigger.TRIGGER_ONCE: "once",
    Trigger.TRIGGER_ONCE_PER_CONTENT: "once",
    Trigger.SEND_ONCE: "send",
    Trigger.SEND_ONCE_PER_CONTENT: "send",
    Trigger.LAST_ONLY: "last",
}
PER_CONTENT = {Trigger.TRIGGER_ONCE_PER_CONTENT, Trigger.SEND_ONCE_PER_CONTENT}


def notify(
    event: str | Event,
    recipients: Any,
    context: Mapping[str, Any] | None = None,
    *,
    channels: list[str] | None = None,
    scheduled_at: dt.datetime | None = None,
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
    template: Template | None = None,
    local_time: dt.time | None = None,
    campaign: Any = None,
    campaign_seen: set[tuple[int, str]] | None = None,
    dry_run: bool = False,
) -> NotifyResult:
    """Write one message per recipient address and channel, and enqueue their dispatch.

    Raises UnknownEvent, UnknownChannel, MissingVariables / InvalidContext or InvalidRecipient
    (with nothing written). Recipients with no address on a channel, opted out, inactive, or
    without a template in any fallback language are returned in ``result.skipped`` with the
    reason. With ``skip_invalid=True`` a malformed address is skipped too, instead of raising.

    Messages are due at ``scheduled_at`` (or now), moved to the next moment inside the
    event's and the channel's availability windows in the recipient's timezone, unless
    ``send_immediately`` (on the call or a recipient) says otherwise.

    With ``local_time`` (e.g. 09:00) each recipient's message is due at that time of day in
    their timezone, on the day of ``scheduled_at`` (or today); where it has passed, at once.

    ``trigger`` overrides the event's trigger behaviour; a trigger a once-behaviour refuses is
    skipped as "duplicate", or raises DuplicateNotification with ``strict=True``. The same
    ``idempotency_key`` with the same payload returns the first call's result.

    ``campaign`` marks the rows as that campaign's; an address that already has the
    campaign on a channel is skipped as "duplicate address" (``campaign_seen`` carries the
    (channel id, address) pairs planned by earlier calls of a dry run; it is updated).
    ``dry_run=True`` plans the same messages and skips, and writes nothing.
    """
    now = timezone.now()
    event = _event_get(event)
    context = context_validate(event=event, context=context or {})
    if scheduled_at is not None and timezone.is_naive(scheduled_at):
        raise InvalidContext("scheduled_at must be timezone-aware")
    if dry_run and idempotency_key:
        raise InvalidContext("a dry run cannot carry an idempotency_key")
    behaviour = trigger or event.trigger
    if behaviour not in Trigger.values:
        raise InvalidContext(f"unknown trigger {behaviour!r}; one of: {', '.join(Trigger.values)}")
    if behaviour in PER_CONTENT and content is None:
        raise InvalidContext(f"trigger {behaviour!r} needs content= (the object it is about)")
    extra = _plain(dict(extra or {}), "extra")
    people = recipients_normalize(recipients)
    if template is not None:
        channels = [template.channel.key]
    chosen = _channels_select(event=event, keys=channels)
    content_ref = _content_ref(content) if content is not None else None
    related = [_content_ref(obj) for obj in related_objects]
    payload = _payload_hash(
        event,
        people,
        context,
        channels,
        scheduled_at,
        tag,
        extra,
        content_ref,
        related,
        behaviour,
        template,
    )

    if template is not None:  # send_template(): that template, whatever the language
        templates = {(template.channel_id, template.language): template}
    else:
        templates = {
            (t.channel_id, t.language): t
            for t in Template.objects.filter(event=event, channel__in=chosen, is_active=True).only(
                "id", "channel_id", "language"
            )
        }
    if channels is None:  # all channels the event has templates for
        with_templates = {channel_id for channel_id, _ in templates}
        chosen = [channel for channel in chosen if channel.pk in with_templates]

    users = _users_load(people)
    user_addresses = _user_addresses_load(users)
    backends = {channel.pk: channel.get_backend() for channel in chosen}
    addresses: list[tuple[dict[str, Any], ChannelConfig, str]] = []
    skipped: list[Skipped] = []
    for index, person in enumerate(people):
        user = users.get(person.get("user_id"))
        if person.get("user_id") is not None:
            if user is None:
                raise InvalidRecipient(index, f"no user with id {person['user_id']}")
            if not user["is_active"]:
                skipped.extend(Skipped(person, c.key, "inactive user") for c in chosen)
                continue
            if not person.get("name"):  # what a user object as recipient is named
                person["name"] = _user_name(user)
            if not person.get("email") and user["email"]:
                person["email"] = user["email"]
            for kind, value in user_addresses.get(user["pk"], {}).items():
                person.setdefault(kind, value)
            if not person.get("tz") and user["notification_profile__timezone"]:
                person["tz"] = user["notification_profile__timezone"]
            if not person.get("language") and user["notification_profile__language"]:
                person["language"] = user["notification_profile__language"].lower()
        if send_immediately:  # kept with the message: dispatch re-checks windows too
            person["send_immediately"] = True
        try:
            recipient_timezone(person, default=settings.TIME_ZONE)
        except ValueError as error:
            if not skip_invalid:
                raise InvalidRecipient(index, str(error)) from None
            skipped.extend(Skipped(person, c.key, "invalid timezone") for c in chosen)
            continue
        for key in ("name", "email"):
            if person.get(key) is None:
                person[key] = ""
        if not person.get("tz"):  # the timezone its windows and local times are read in
            person["tz"] = settings.TIME_ZONE
        for channel in chosen:
            backend = backends[channel.pk]
            address = backend.address(person)
            if address is None:
                skipped.append(Skipped(person, channel.key, "no address"))
                continue
            try:
                backend.validate_address(address)
            except ValidationError as error:
                if not skip_invalid:
                    raise InvalidRecipient(
                        index, f"{channel.key}: {' '.join(error.messages)}"
                    ) from None
                skipped.append(Skipped(person, channel.key, "invalid address"))
                continue
            addresses.append((person, channel, address))

    addresses, dead = _inactive_addresses_drop(addresses, backends)
    skipped.extend(Skipped(p, c.key, "inactive address") for p, c, _ in dead)
    opted_out = optouts_matcher(
        user_ids=(p.get("user_id") for p, _, _ in addresses),
        addresses=(a for _, _, a in addresses),
        event_ids=[event.pk],
        channel_ids=[c.pk for c in chosen],
    )
    event_windows, channel_windows = windows_for(
        event_id=event.pk, channel_ids=[c.pk for c in chosen]
    )
    earliest = max(now, scheduled_at) if scheduled_at else now
    local_day = timezone.localtime(scheduled_at or now).date()
    taken = campaign_seen if campaign_seen is not None else set()
    if campaign is not None:
        taken |= _campaign_addresses(campaign, addresses)
    prefix = ONCE_PREFIX.get(behaviour, "")
    queue_lease = now + dt.timedelta(seconds=app_settings.QUEUED_TIMEOUT)
    default_attempts = max_attempts or app_settings.MAX_ATTEMPTS
    messages: list[Message] = []
    for person, channel, address in addresses:
        if campaign is not None and (channel.pk, address) in taken:
            skipped.append(Skipped(person, channel.key, "duplicate address"))
            continue
        if not event.mandatory and opted_out(
            person.get("user_id"), address, event.pk, channel.pk, event.marketing
        ):
            skipped.append(Skipped(person, channel.key, "opted out"))
            continue
        chosen_template = template or next(  # send_template() fixes it; else the fallbacks
            (
                templates[(channel.pk, language)]
                for language in language_candidates(person.get("language"), event)
                if (channel.pk, language) in templates
            ),
            None,
        )
        if chosen_template is None:
            skipped.append(Skipped(person, channel.key, "no template"))
            continue
        identity = f"u{person['user_id']}" if person.get("user_id") else address.lower()
        key = f"{prefix}:{event.pk}:{channel.pk}:{identity}" if prefix else ""
        if key and behaviour in PER_CONTENT:
            key = f"{key}:{content_ref[0].pk}:{content_ref[1]}"
        start = earliest
        if local_time is not None:
            zone = recipient_timezone(person, default=settings.TIME_ZONE)
            start = max(now, dt.datetime.combine(local_day, local_time, tzinfo=zone))
        due = recipient_delivery_time(  # the timezone was checked in the recipient loop
            person,
            now=start,
            default_tz=settings.TIME_ZONE,
            event_windows=event_windows,
            channel_windows=channel_windows[channel.pk],
            send_immediately=send_immediately,
        )
        due_now = due <= now
        if campaign is not None:  # taken once planned: an opted-out first one takes nothing
            taken.add((channel.pk, address))
        messages.append(
            _message_new(
                {
                    "event_id": event.pk,
                    "channel_id": channel.pk,
                    "template_id": chosen_template.pk,
                    "template_key": f"{event.key}/{channel.key}/{chosen_template.language}",
                    "language": chosen_template.language,
                    "address": address,
                    "recipient": person
                    if person.get("language")
                    else {**person, "language": chosen_template.language},
                    "user_id": person.get("user_id"),
                    "context": context,
                    "status": MessageStatus.QUEUED if due_now else MessageStatus.SCHEDULED,
                    "scheduled_at": scheduled_at,
                    "next_attempt_at": now if due_now else due,
                    "lease_until": queue_lease if due_now else None,
                    "max_attempts": max_attempts or channel.max_attempts or default_attempts,
                    "tag": tag or "",
                    "extra": extra,
                    "dedupe_key": key,
                    "idempotency_key": idempotency_key,
                    "content_type_id": content_ref[0].pk if content_ref else None,
                    "object_id": content_ref[1] if content_ref else "",
                    "trigger_user_id": getattr(trigger_user, "pk", trigger_user),
                    "campaign_id": campaign.pk if campaign is not None else None,
                },
                related={
                    "event": event,
                    "channel": channel,
                    "template": chosen_template,
                    **({"campaign": campaign} if campaign is not None else {}),
                },
            )
        )

    if dry_run:
        messages, duplicates = _triggers_apply(messages, behaviour=behaviour, now=now, dry_run=True)
        skipped.extend(Skipped(m.recipient, m.channel.key, reason) for m, reason in duplicates)
        return NotifyResult(messages=messages, skipped=skipped)

    try:
        with transaction.atomic():
            if idempotency_key:
                earlier = _idempotency_claim(idempotency_key, payload, skipped)
                if earlier is not None:
                    return earlier
            messages, duplicates = _triggers_apply(messages, behaviour=behaviour, now=now)
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
            enqueue_dispatch_on_commit(ids_by_channel)
    except IntegrityError as error:
        if (
            idempotency_key
            and "key" in str(error)
            and NotifyRequest.objects.filter(key=idempotency_key).exists()
        ):
            # Another call with the same key committed first: answer with its result.
            return _idempotency_claim(idempotency_key, payload, skipped)
        raise
    return NotifyResult(messages=messages, skipped=skipped)


def send_template(
    recipients: Any, slug: str, context: Mapping[str, Any] | None = None, **options: Any
) -> NotifyResult:
    """A transactional one-off: send the template with this slug (its event, channel and
    language), with the same validation and options as ``notify()``."""
    template = (
        Template.objects.select_related("event", "channel")
        .filter(slug=slug, is_active=True)
        .first()
    )
    if template is None:
        raise UnknownTemplate(slug)
    return notify(template.event, recipients, context, template=template, **options)


def _content_ref(obj: models.Model) -> tuple[ContentType, str]:
    if not isinstance(obj, models.Model) or obj.pk is None:
        raise InvalidContext(
            f"content and related objects must be saved model instances, got {obj!r}"
        )
    return ContentType.objects.get_for_model(obj), str(obj.pk)


def _payload_hash(*parts: Any) -> str:
    def default(value):
        if isinstance(value, ContentType):
            return value.natural_key()
        if isinstance(value, models.Model):
            return [value._meta.label, value.pk]
        return str(value)

    encoded = json.dumps(parts, default=default, sort_keys=True)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _idempotency_claim(key: str, payload: str, skipped: list[Skipped]) -> NotifyResult | None:
    """None when this call is the first with ``key`` (it is now recorded); else the first
    call's result. A different payload under the same key raises IdempotencyConflict."""
    earlier = NotifyRequest.objects.filter(key=key).first()
    if earlier is None:
        with transaction.atomic():  # a concurrent first call makes this insert wait, then fail
            NotifyRequest.objects.create(key=key, payload_hash=payload)
        return None
    if earlier.payload_hash != payload:
        raise IdempotencyConflict(key)
    return NotifyResult(
        messages=list(Message.objects.filter(idempotency_key=key).order_by("id")),
        skipped=[Skipped(**item) for item in earlier.skipped],
    )


def _triggers_apply(
    messages: list[Message], *, behaviour: str, now: dt.datetime, dry_run: bool = False
) -> tuple[list[Message], list[tuple[Message, str]]]:
    """Apply the trigger behaviour under a lock per key (so concurrent calls serialise per
    recipient); returns the messages to write and the refused ones with their reason. A dry
    run reads the same rows without locking or cancelling anything."""
    keyed = [m for m in messages if m.dedupe_key]
    if not keyed:
        return messages, []
    keys = sorted({m.dedupe_key for m in keyed})
    if connection.vendor == "postgresql" and not dry_run:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
                [keys],
            )
    if behaviour == Trigger.LAST_ONLY and not dry_run:
        Message.objects.filter(
            dedupe_key__in=keys, status__in=[s for s in ACTIVE if s != MessageStatus.SENDING]
        ).update(
            status=MessageStatus.CANCELLED,
            status_reason="superseded by a newer trigger",
            next_attempt_at=None,
            lease_until=None,
            updated_at=now,
        )
        blocking: set[str] = set()
    elif behaviour == Trigger.LAST_ONLY:  # a dry run: what would be superseded is not refused
        blocking = set()
    else:
        states = [*ACTIVE, MessageStatus.SENT] if behaviour in SEND_ONCE else list(ACTIVE)
        blocking = set(
            Message.objects.filter(dedupe_key__in=keys, status__in=states).values_list(
                "dedupe_key", flat=True
            )
        )
    kept, refused, seen = [], [], set()
    for message in messages:
        key = message.dedupe_key
        if key and (key in blocking or (key in seen and behaviour != Trigger.LAST_ONLY)):
            refused.append((message, "duplicate"))
            continue
        if key and key in seen:  # last_only: the latest trigger of this call wins
            kept = [m for m in kept if m.dedupe_key != key]
        seen.add(key)
        kept.append(message)
    return kept, refused


@functools.cache
def _message_layout() -> list[tuple[str, Any, Any]]:
    """(attname, default factory, default value) of each Message column, in field order."""
    layout = []
    for f in Message._meta.concrete_fields:
        if f.has_default() and callable(f.default):
            layout.append((f.attname, f.default, None))
        else:
            layout.append((f.attname, None, f.get_default()))
    return layout


def _message_new(values: dict[str, Any], *, related: dict[str, Any]) -> Message:
    """A Message built from column values (positional ``__init__``: a fan-out builds one per
    recipient and channel, and keyword construction costs several times more); the related
    objects given are cached on it, so reading them needs no query."""
    message = Message(
        *[
            values[name] if name in values else (factory() if factory else default)
            for name, factory, default in _message_layout()
        ]
    )
    for name, obj in related.items():
        Message._meta.get_field(name).set_cached_value(message, obj)
    return message


def _campaign_addresses(campaign: Any, addresses: list) -> set[tuple[int, str]]:
    """(channel id, address) pairs that already have this campaign: one query."""
    if not addresses or campaign.pk is None:
        return set()
    rows = Message.objects.filter(
        campaign=campaign, address__in={address for _, _, address in addresses}
    ).values_list("channel_id", "address")
    return set(rows)


def _event_get(event: str | Event) -> Event:
    if isinstance(event, Event):
        if not event.is_active:
            raise UnknownEvent(event.key, inactive=True)
        return event
    found = Event.objects.filter(key=event).first()
    if found is None:
        raise UnknownEvent(str(event))
    if not found.is_active:
        raise UnknownEvent(found.key, inactive=True)
    return found


def _user_addresses_load(users: dict[int, dict[str, Any]]) -> dict[int, dict[str, str]]:
    """The active addresses of these users per kind (verified ones first), in one query."""
    if not users:
        return {}
    found: dict[int, dict[str, str]] = defaultdict(dict)
    rows = (
        ChannelAddress.objects.filter(user_id__in=users, is_active=True)
        .order_by("-is_verified", "-updated_at")
        .values_list("user_id", "kind", "address")
    )
    for user_id, kind, address in rows:
        found[user_id].setdefault(kind, address)
    return found


def _inactive_addresses_drop(addresses: list, backends: dict) -> tuple[list, list]:
    """Split off the addresses deactivated (e.g. a provider said they are dead): one query."""
    if not addresses:
        return addresses, []
    inactive = set(
        ChannelAddress.objects.filter(
            address__in={address for _, _, address in addresses}, is_active=False
        ).values_list("kind", "address")
    )
    if not inactive:
        return addresses, []
    kept, dead = [], []
    for item in addresses:
        _, channel, address = item
        kind = backends[channel.pk].recipient_key()
        (dead if (kind, address) in inactive else kept).append(item)
    return kept, dead


@functools.cache
def _user_name_fields() -> tuple[str, ...]:
    """The user model's name columns: (first_name, last_name, USERNAME_FIELD) as it has them."""
    model = get_user_model()
    columns = {f.name for f in model._meta.concrete_fields}
    return (*(n for n in ("first_name", "last_name") if n in columns), model.USERNAME_FIELD)


def _user_name(row: dict[str, Any]) -> str:
    """``get_full_name() or get_username()``, from a row of ``_users_load``."""
    *parts, username = (row[name] or "" for name in _user_name_fields())
    return " ".join(parts).strip() or str(username)


def _users_load(people: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    ids = {person["user_id"] for person in people if person.get("user_id") is not None}
    if not ids:
        return {}
    rows = (
        get_user_model()
        .objects.filter(pk__in=ids)
        .values(
            "pk",
            "is_active",
            "email",
            *_user_name_fields(),
            "notification_profile__timezone",
            "notification_profile__language",
        )
    )
    return {row["pk"]: row for row in rows}
