"""Planning: recipients x channels → the messages a trigger would write, and the skips with
their reasons. Reads, never writes.

``notify()``, ``send_template()``, a campaign's fan-out and its dry run all plan through
``plan()``: what differs between them (a fixed template, a local time of day, the campaign a
row belongs to) is a ``PlanOptions`` field, not a flag on the public function. The number
of queries does not grow with the number of recipients: the users, their addresses, the
dead addresses, the opt-outs and the windows are each read once.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db.models.base import ModelState
from django.utils import timezone

from campaigns.conf import app_settings
from campaigns.domain.context import language_candidates, show, text_problem
from campaigns.domain.ids import uuid7_batch
from campaigns.domain.windows import recipient_delivery_time, recipient_timezone
from campaigns.exceptions import InvalidArgument, InvalidRecipient, UnknownChannel, UnknownEvent
from campaigns.models import Campaign, Event, Message, MessageStatus, Template
from campaigns.models.events import Trigger
from campaigns.outbox.catalog import Catalog, catalog
from campaigns.recipients.addresses import devices_pick, user_name
from campaigns.recipients.facts import recipient_facts_load
from channels.models import ChannelConfig, Devices

#: Behaviours that refuse a trigger while a message of the key is pending or was ever sent.
SEND_ONCE = frozenset({Trigger.SEND_ONCE, Trigger.SEND_ONCE_PER_CONTENT})
#: The prefix of each behaviour's dedupe keys (none: a new message every time).
ONCE_PREFIX = {
    Trigger.TRIGGER_ONCE: "once",
    Trigger.TRIGGER_ONCE_PER_CONTENT: "once",
    Trigger.SEND_ONCE: "send",
    Trigger.SEND_ONCE_PER_CONTENT: "send",
    Trigger.LAST_ONLY: "last",
}
PER_CONTENT = frozenset({Trigger.TRIGGER_ONCE_PER_CONTENT, Trigger.SEND_ONCE_PER_CONTENT})

_ADDRESS_LENGTH = Message._meta.get_field("address").max_length
_DEDUPE_KEY_LENGTH = Message._meta.get_field("dedupe_key").max_length
_EVENT_KEY_LENGTH = Event._meta.get_field("key").max_length


@dataclass(frozen=True, slots=True)
class Skipped:
    recipient: dict[str, Any]
    channel: str
    reason: str


@dataclass(slots=True)
class NotifyResult:
    """What a trigger wrote (or, planned, would write), and whom it skipped and why."""

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


@dataclass(slots=True)
class PlanOptions:
    """How to plan, beyond the event, recipients, context and channels. Callers have checked
    the values (``notify()`` checks a developer's; the campaign engine builds its own)."""

    scheduled_at: dt.datetime | None = None
    #: When an unsent message is cancelled as expired: a time, or a time after it is due (the
    #: later of now and ``scheduled_at``); None: the event's ``expires_after``, if any.
    expires_at: dt.datetime | dt.timedelta | None = None
    send_immediately: bool = False
    skip_invalid: bool = False
    max_attempts: int | None = None
    tag: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: (content type, object id) of ``notify(content=…)``
    content_ref: tuple[ContentType, str] | None = None
    trigger_user_id: int | None = None
    #: The trigger user was given as an id: check with the recipients' users that it exists.
    trigger_user_unchecked: bool = False
    behaviour: str = Trigger.DEFAULT
    idempotency_key: str = ""
    #: ``send_template()``: that template, whatever the recipient's language.
    template: Template | None = None
    #: A campaign's "09:00 local": due at that time of day in each recipient's timezone, on
    #: the day of ``scheduled_at`` (or today); where it has passed, at once.
    local_time: dt.time | None = None
    #: The campaign the rows belong to: an address that already has the campaign on a channel
    #: is skipped as "duplicate address".
    campaign: Campaign | None = None
    #: Read which of the addresses already have the campaign (one query). A chunk job writes
    #: without it first: its unique index refuses a row another chunk wrote, and the job
    #: plans again with it (``chunk_fan_out``).
    campaign_rows_read: bool = True
    #: (channel id, address) pairs planned by earlier chunks of a campaign's dry run (updated).
    seen: set[tuple[int, str]] | None = None
    #: ``notify_text()``: the message's own (subject, text, html), stored on each row and sent
    #: as they are; no template.
    content: tuple[str, str, str] | None = None


def event_load(event: Any, *, cat: Catalog | None = None) -> Event:
    """The active event named by a key or given as an Event; UnknownEvent or InvalidArgument."""
    if isinstance(event, Event):
        if event.pk is None:
            raise InvalidArgument("event", "is an Event that was never saved")
        if not event.is_active:
            raise UnknownEvent(event.key, inactive=True)
        return event
    if not isinstance(event, str):
        raise InvalidArgument(
            "event", f"must be an event key (a str) or an Event, got {show(event)}"
        )
    if problem := text_problem(event):
        raise InvalidArgument("event", problem)
    found = (cat or catalog()).events.get(event)
    if found is None:
        raise UnknownEvent(event)
    if not found.is_active:
        raise UnknownEvent(found.key, inactive=True)
    return found


def channels_select(*, keys: Iterable[str] | None, cat: Catalog) -> list[ChannelConfig]:
    """The active channels named by ``keys`` (all active ones for None); UnknownChannel
    names any that is not."""
    active = cat.active
    if keys is None:
        return list(active.values())
    if isinstance(keys, str):
        keys = [keys]
    unknown = [key for key in keys if key not in active]
    if unknown:
        raise UnknownChannel(unknown, known=sorted(active))
    return [active[key] for key in dict.fromkeys(keys)]


def plan(
    *,
    event: Event,
    people: list[dict[str, Any]],
    context: dict[str, Any],
    channels: list[str] | None,
    options: PlanOptions,
    now: dt.datetime | None = None,
    cat: Catalog | None = None,
) -> NotifyResult:
    """The messages for ``people`` (normalised recipients) on ``channels`` (None: every active
    channel the event has a template for), and the skips. Writes nothing.

    Raises UnknownChannel, InvalidRecipient (a malformed address or timezone, unless
    ``options.skip_invalid``; an unknown user id) or InvalidArgument (an unknown trigger user).
    """
    now = now or timezone.now()
    cat = cat or catalog()
    template = options.template
    if template is not None:
        channels = [template.channel.key]
    chosen = channels_select(keys=channels, cat=cat)
    if template is not None:  # send_template(): that template, whatever the language
        templates = {template.channel_id: {template.language: (template.pk, template.published_id)}}
    elif options.content is not None:  # notify_text(): its own content, in any language
        templates = {c.pk: {} for c in chosen}
    else:
        templates = {c.pk: cat.templates.get((event.pk, c.pk), {}) for c in chosen}
    if channels is None:  # all channels the event has templates for
        chosen = [channel for channel in chosen if templates[channel.pk]]
    backends = {}
    for channel in chosen:
        backend = cat.backends[channel.pk]
        if isinstance(backend, Exception):  # a misconfigured channel named by the call
            raise backend
        backends[channel.pk] = backend

    also = options.trigger_user_id if options.trigger_user_unchecked else None
    facts = recipient_facts_load(  # the trigger user's id is checked with the recipients'
        people=people, also=also, event_ids=[event.pk], channels=chosen
    )
    if also is not None and also not in facts.users:
        raise InvalidArgument("trigger_user", f"{also} is no user's id")
    addresses, skipped = _addresses(
        people, chosen, users=facts.users, backends=backends, options=options
    )
    if facts.dead:  # addresses a provider called dead get nothing
        kept = []
        for item in addresses:
            person, channel, address = item
            if (backends[channel.pk].recipient_key(), address) in facts.dead:
                skipped.append(Skipped(person, channel.key, "inactive address"))
            else:
                kept.append(item)
        addresses = kept
    messages = _messages(
        event=event,
        context=context,
        addresses=addresses,
        templates=templates,
        opted_out=facts.opted_out,
        windows=cat.windows(event.pk, [c.pk for c in chosen]),
        options=options,
        skipped=skipped,
        now=now,
    )
    return NotifyResult(messages=messages, skipped=skipped)


def _addresses(
    people: list[dict[str, Any]],
    chosen: list[ChannelConfig],
    *,
    users: dict[int, dict[str, Any]],
    backends: dict[int, Any],
    options: PlanOptions,
) -> tuple[list[tuple[dict[str, Any], ChannelConfig, str]], list[Skipped]]:
    """Each recipient's address on each channel (filled in from their user), or a skip."""
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
                person["name"] = user_name(user)
            if not person.get("email") and user["email"]:
                person["email"] = user["email"]
            for kind, value in user["addresses"].items():
                person.setdefault(kind, value)
            if not person.get("tz") and user["timezone"]:
                person["tz"] = user["timezone"]
            if not person.get("language") and user["language"]:
                person["language"] = user["language"].lower()
        if options.send_immediately:  # kept with the message: dispatch re-checks windows too
            person["send_immediately"] = True
        try:
            recipient_timezone(person, default=settings.TIME_ZONE)
        except ValueError as error:
            if not options.skip_invalid:
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
            devices = [person]
            if channel.devices != Devices.BEST and user is not None:
                devices = _devices(person, user, setting=channel.devices, backend=backend)
            for device in devices:
                address = backend.address(device)
                if address is None:
                    skipped.append(Skipped(person, channel.key, "no address"))
                    continue
                try:
                    if len(address) > _ADDRESS_LENGTH:
                        raise ValidationError(
                            f"the address is {len(address)} characters long; "
                            f"at most {_ADDRESS_LENGTH} are stored"
                        )
                    backend.validate_address(address)
                except ValidationError as error:
                    if not options.skip_invalid:
                        raise InvalidRecipient(
                            index, f"{channel.key}: {' '.join(error.messages)}"
                        ) from None
                    skipped.append(Skipped(person, channel.key, "invalid address"))
                    continue
                addresses.append((device, channel, address))
    return addresses, skipped


def _devices(
    person: dict[str, Any], user: dict[str, Any], *, setting: str, backend: Any
) -> list[dict[str, Any]]:
    """The recipient once per address a channel's ``devices`` setting sends to (README "Every
    device"): when the recipient's address of the channel's kind is their user's (not one the
    call gave), the newest or every active one of that kind, each a copy of the recipient
    holding that address. Nothing is read: the user's addresses came with the user."""
    kind = backend.recipient_key()
    found = user.get("devices", {}).get(kind)
    if not kind or not found or person.get(kind) != user["addresses"].get(kind):
        return [person]
    picked = devices_pick(setting=setting, best=person[kind], devices=found)
    return [person if address == person[kind] else {**person, kind: address} for address in picked]


def dedupe_key(
    *, behaviour: str, event: Event, channel: ChannelConfig, person: dict, address: str, options
) -> str:
    """The trigger-behaviour key of one message: event, channel, recipient (its user, else
    its address), and the content for a per-content behaviour; "" when the behaviour has
    none."""
    prefix = ONCE_PREFIX.get(behaviour, "")
    if not prefix:
        return ""
    identity = f"u{person['user_id']}" if person.get("user_id") else address.lower()
    if person.get("user_id") and channel.devices != Devices.BEST:  # one key per device
        identity = f"{identity}:{hashlib.sha256(address.encode()).hexdigest()[:16]}"
    key = f"{prefix}:{event.pk}:{channel.pk}:{identity}"
    if behaviour in PER_CONTENT:
        content_type, object_id = options.content_ref
        key = f"{key}:{content_type.pk}:{object_id}"
    if len(key) > _DEDUPE_KEY_LENGTH:  # a long address: its digest keeps the key unique
        digest = hashlib.sha256(key.encode()).hexdigest()
        key = f"{prefix}:{event.pk}:{channel.pk}:sha256:{digest}"
    return key


def _messages(
    *,
    event: Event,
    context: dict[str, Any],
    addresses: list[tuple[dict[str, Any], ChannelConfig, str]],
    templates: dict[int, dict[str, int]],
    opted_out: Any,
    windows: tuple[list, dict[int, list]],
    options: PlanOptions,
    skipped: list[Skipped],
    now: dt.datetime,
) -> list[Message]:
    event_windows, channel_windows = windows
    scheduled_at, campaign = options.scheduled_at, options.campaign
    earliest = max(now, scheduled_at) if scheduled_at else now
    local_day = timezone.localtime(scheduled_at or now).date()
    taken = options.seen if options.seen is not None else set()
    if campaign is not None and options.campaign_rows_read:
        taken |= _campaign_addresses(campaign, addresses)
    queue_lease = now + dt.timedelta(seconds=app_settings.QUEUED_TIMEOUT)
    expires_at = options.expires_at or event.expires_after
    if isinstance(expires_at, dt.timedelta):  # counted from when the call makes it due
        expires_at = earliest + expires_at
    default_attempts = options.max_attempts or app_settings.MAX_ATTEMPTS
    content_ref = options.content_ref
    messages: list[Message] = []
    uuids = iter(uuid7_batch(len(addresses)))  # the unused ones (skips) cost nothing more
    chosen: dict[tuple[int, str | None], str | None] = {}  # the language of each asked for
    for person, channel, address in addresses:
        if campaign is not None and (channel.pk, address) in taken:
            skipped.append(Skipped(person, channel.key, "duplicate address"))
            continue
        if not event.mandatory and opted_out(
            person.get("user_id"), address, event.pk, channel.pk, event.marketing
        ):
            skipped.append(Skipped(person, channel.key, "opted out"))
            continue
        if options.content is not None:  # notify_text(): no template to choose
            language, template_id, version_id = person.get("language") or "", None, None
        else:
            languages = templates[channel.pk]
            asked = (channel.pk, person.get("language"))
            if (language := chosen.get(asked, "")) == "":  # once per channel and language
                language = chosen[asked] = next(  # the template's, else the fallbacks
                    (lang for lang in language_candidates(asked[1], event) if lang in languages),
                    None if options.template is None else options.template.language,
                )
            if language is None:
                skipped.append(Skipped(person, channel.key, "no template"))
                continue
            template_id, version_id = languages[language]
        key = dedupe_key(
            behaviour=options.behaviour,
            event=event,
            channel=channel,
            person=person,
            address=address,
            options=options,
        )
        start = earliest
        if options.local_time is not None:
            zone = recipient_timezone(person, default=settings.TIME_ZONE)
            start = max(now, dt.datetime.combine(local_day, options.local_time, tzinfo=zone))
        due = recipient_delivery_time(  # the timezone was checked with the addresses
            person,
            now=start,
            default_tz=settings.TIME_ZONE,
            event_windows=event_windows,
            channel_windows=channel_windows[channel.pk],
            send_immediately=options.send_immediately,
        )
        due_now = due <= now
        if campaign is not None:  # taken once planned: an opted-out first one takes nothing
            taken.add((channel.pk, address))
        messages.append(
            _message_new(
                {
                    "uuid": next(uuids),
                    "event_id": event.pk,
                    "channel_id": channel.pk,
                    "template_id": template_id,
                    "template_version_id": version_id,
                    "template_key": f"{event.key}/{channel.key}/{language}",
                    "language": language,
                    "address": address,
                    "recipient": person
                    if person.get("language")
                    else {**person, "language": language},
                    "user_id": person.get("user_id"),
                    "context": context,
                    "status": MessageStatus.QUEUED if due_now else MessageStatus.SCHEDULED,
                    "scheduled_at": scheduled_at,
                    "expires_at": expires_at,
                    "next_attempt_at": now if due_now else due,
                    "lease_until": queue_lease if due_now else None,
                    "max_attempts": options.max_attempts
                    or channel.max_attempts
                    or default_attempts,
                    "tag": options.tag or "",
                    "extra": options.extra,
                    "dedupe_key": key,
                    "idempotency_key": options.idempotency_key,
                    "content_type_id": content_ref[0].pk if content_ref else None,
                    "object_id": content_ref[1] if content_ref else "",
                    "trigger_user_id": options.trigger_user_id,
                    "campaign_id": campaign.pk if campaign is not None else None,
                    **_stored_content(options.content),
                },
                related={
                    "event": event,
                    "channel": channel,
                    **({"campaign": campaign} if campaign is not None else {}),
                },
            )
        )
    return messages


def _stored_content(content: tuple[str, str, str] | None) -> dict[str, str]:
    """The columns of a message that carries its own content (``notify_text()``)."""
    if content is None:
        return {}
    subject, text, html = content
    return {"subject": subject, "text": text, "html": html}


@functools.cache
def _message_defaults() -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    """The Message columns' defaults: (attname → value, ((attname, factory), …)) for the
    plain ones and the callable ones."""
    fixed, factories = {}, []
    for f in Message._meta.concrete_fields:
        if f.has_default() and callable(f.default):
            factories.append((f.attname, f.default))
        else:
            fixed[f.attname] = f.get_default()
    return fixed, tuple(factories)


def _message_new(values: dict[str, Any], *, related: dict[str, Any]) -> Message:
    """A Message built from column values the way the ORM builds a row it has read, without
    ``Model.__init__`` (whose per-field descriptors cost most of a fan-out's Python per
    message; Message has no init signal receivers); the related objects given are cached on
    it, so reading them needs no query."""
    fixed, factories = _message_defaults()
    message = Message.__new__(Message)
    message._state = state = ModelState()
    attributes = message.__dict__
    attributes.update(fixed)
    for name, factory in factories:
        if name not in values:
            attributes[name] = factory()
    attributes.update(values)
    for name, obj in related.items():
        state.fields_cache[name] = obj
    return message


def _campaign_addresses(campaign: Campaign, addresses: list) -> set[tuple[int, str]]:
    """(channel id, address) pairs that already have this campaign: one query."""
    if not addresses or campaign.pk is None:
        return set()
    rows = Message.objects.filter(
        campaign=campaign, address__in={address for _, _, address in addresses}
    ).values_list("channel_id", "address")
    return set(rows)
