"""The checks every caller's data goes through before anything is written: the context and
extra data must be plain data PostgreSQL can store, recipients are normalised to mappings,
and the language a recipient gets is chosen. Pure: no database.

PostgreSQL refuses NUL characters and lone surrogates in text and JSON, non-finite numbers in
JSON and values longer than their column; such a refusal would come as a database error half
way through a write (or, for a foreign key, only at commit), so each is found here first and
named.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth import get_user_model

from campaigns.exceptions import InvalidArgument, InvalidContext, InvalidRecipient, MissingVariables

if TYPE_CHECKING:  # annotations only: the domain reads an event's fields, never the database
    from campaigns.models import Event

#: What every recipient carries to its templates (``{{ recipient.name }}`` …) whoever gave it:
#: a user's are filled in from the user and their profile, and what is still unknown is empty
#: (language: the message's, tz: the site's). The preview's sample recipient has these keys.
RECIPIENT_FIELDS = ("name", "email", "language", "tz")


_CONVERTIBLE = (dt.datetime, dt.date, dt.time, Decimal, UUID)


#: Characters PostgreSQL cannot store in text or JSON.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


#: How deep context, extra and recipient data may nest (deeper is a bug, not data).
MAX_DEPTH = 32


#: Integers with more digits than Python will write as text (sys.set_int_max_str_digits).
_INT_LIMIT = 10**4000


#: scheduled_at must lie in this range: local times and windows are computed days around it,
#: and datetime ends at the years 1 and 9999.
EARLIEST = dt.datetime(2, 1, 1, tzinfo=dt.UTC)


LATEST = dt.datetime(9998, 1, 1, tzinfo=dt.UTC)


BIGINT = 2**63  # ids are bigint


#: Types of a recipient's values that need no walk (their text and numbers are checked for
#: all recipients at once).
_FLAT = frozenset({str, int, float, bool, type(None)})


def show(value: Any) -> str:
    """A caller's value, short, for an error message: its repr could be huge, or recurse
    without end, or (a very long int) refuse to be written at all."""
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if -(10**30) < value < 10**30 else "a very large integer"
    if isinstance(value, str):
        return repr(value[:60]) + ("…" if len(value) > 60 else "")
    return f"a {type(value).__module__}.{type(value).__qualname__}"


def text_problem(value: str) -> str | None:
    """Why PostgreSQL would refuse ``value``, or None."""
    found = UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"contains a NUL character (at position {found.start()})"
    return f"contains a lone surrogate {found.group()!r} (at position {found.start()})"


def text_check(argument: str, value: Any, *, max_length: int, allow_none: bool = False) -> str:
    """``value`` as a storable str of at most ``max_length`` characters, or InvalidArgument."""
    if value is None and allow_none:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(argument, f"must be a str, got {type(value).__name__}")
    if problem := text_problem(value):
        raise InvalidArgument(argument, problem)
    if len(value) > max_length:
        raise InvalidArgument(
            argument, f"is {len(value)} characters long; at most {max_length} are stored"
        )
    return value


def bool_check(argument: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(argument, f"must be True or False, got {show(value)}")
    return value


def context_validate(*, event: Event, context: Any) -> dict[str, Any]:
    """Return a JSON-safe copy of ``context``; dates, decimals and UUIDs become strings.
    Anything else (model instances, objects, sets …) is refused, named by its path."""
    if context is None:
        context = {}
    if not isinstance(context, Mapping):
        raise InvalidContext(f"context must be a mapping, got {type(context).__name__}")
    copy = plain(context, "", error=InvalidContext, argument="context")
    missing = [name for name in event.required_variables if name not in copy]
    if missing:
        raise MissingVariables(event.key, missing)
    return copy


def plain(
    value: Any,
    path: str,
    *,
    error: Callable[[str], Exception] = InvalidContext,
    argument: str = "context",
    depth: int = 0,
) -> Any:
    """A JSON-safe copy of ``value`` (``path`` names it in errors, made with ``error``)."""
    if isinstance(value, str):
        if problem := text_problem(value):
            raise error(f"{argument} value {path} {problem}")
        return value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_INT_LIMIT < value < _INT_LIMIT:
            return value
        raise error(f"{argument} value {path} is an integer too large to store")
    if isinstance(value, float):
        if value != value:
            raise error(f"{argument} value {path} is NaN, which JSON cannot hold")
        if value in (math.inf, -math.inf):
            raise error(f"{argument} value {path} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, _CONVERTIBLE):
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_DEPTH:
        raise error(f"{argument} value {path} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        copy = {}
        for key, item in value.items():
            name = key if isinstance(key, str) else str(key)
            inner = f"{path}.{name}" if path else name
            if problem := text_problem(name):
                raise error(f"{argument} key {inner!r} {problem}")
            copy[name] = plain(item, inner, error=error, argument=argument, depth=depth + 1)
        return copy
    if isinstance(value, list | tuple):
        return [
            plain(item, f"{path}[{i}]", error=error, argument=argument, depth=depth + 1)
            for i, item in enumerate(value)
        ]
    raise error(
        f"{argument} value {path} is a {type(value).__module__}.{type(value).__qualname__}, "
        "not plain data (str, number, bool, date, list, dict); pass its fields instead"
    )


def _recipient_data_problem(value: Any, path: str, depth: int = 0) -> str | None:
    """Why a recipient's data (plain JSON only: no dates here) cannot be stored, or None."""
    if isinstance(value, str):
        problem = text_problem(value)
        return f"{path} {problem}" if problem else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -_INT_LIMIT < value < _INT_LIMIT else f"{path} is an integer too large"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value}, which JSON cannot hold"
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_DEPTH:
        return f"{path} is nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool | None):
                return f"{path} has a key that is {show(key)}, not a str"
            key = str(key)
            inner = f"{path}.{key}" if path else key
            if problem := text_problem(key):
                return f"key {inner!r} {problem}"
            if problem := _recipient_data_problem(item, inner, depth + 1):
                return problem
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if problem := _recipient_data_problem(item, f"{path}[{i}]", depth + 1):
                return problem
        return None
    return f"{path} is a {type(value).__name__}, not plain data (str, number, bool, list, dict)"


def _recipients_data_check(normalized: list[dict[str, Any]]) -> None:
    """One C-speed pass over all recipients (JSON encoding, then a scan for characters
    PostgreSQL refuses); only when it finds something are they walked one by one, to name
    the recipient and the field."""
    try:
        text = json.dumps(normalized, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        text = None
    # Lone surrogates stay themselves in the JSON text; a NUL becomes \u0000 (which a
    # literal backslash-u0000 in the data also contains: the walk below then finds nothing).
    if text is not None and UNSTORABLE.search(text) is None and "\\u0000" not in text:
        return
    for index, item in enumerate(normalized):
        if problem := _recipient_data_problem(item, ""):
            raise InvalidRecipient(index, problem)


def recipients_normalize(recipients: Any) -> list[dict[str, Any]]:
    """Mappings are copied; user objects become ``{"user_id", "email", "name"}``."""
    user_model = get_user_model()
    if isinstance(recipients, (Mapping, user_model)):
        recipients = [recipients]
    elif isinstance(recipients, (str, bytes)) or not isinstance(recipients, Iterable):
        raise InvalidRecipient(0, f"recipients must be mappings or users, got {show(recipients)}")
    normalized = []
    for index, recipient in enumerate(recipients):
        if isinstance(recipient, user_model):
            item = {
                "user_id": recipient.pk,
                "email": getattr(recipient, "email", "") or "",
                "name": recipient.get_full_name() or recipient.get_username(),
            }
        elif isinstance(recipient, Mapping):
            item = {k if isinstance(k, str) else str(k): v for k, v in recipient.items()}
        else:
            raise InvalidRecipient(
                index, f"expected a mapping or a user, got {type(recipient).__name__}"
            )
        user_id = item.get("user_id")
        if user_id is not None:
            if isinstance(user_id, str) and user_id.strip().isdecimal():
                user_id = int(user_id)
            if isinstance(user_id, bool) or not isinstance(user_id, int):
                raise InvalidRecipient(index, f"user_id {show(user_id)} is not an id")
            if not 0 < user_id < BIGINT:
                raise InvalidRecipient(index, f"user_id {show(user_id)} is not an id")
            item["user_id"] = user_id
        for key, value in item.items():  # containers are rare: walk them here (depth)
            if type(value) not in _FLAT and (problem := _recipient_data_problem(value, key, 1)):
                raise InvalidRecipient(index, problem)
        language = item.get("language")
        if language and isinstance(language, str):
            item["language"] = language.strip().lower().replace("_", "-")
        elif language:
            raise InvalidRecipient(index, f"language {show(language)} is not a str")
        normalized.append(item)
    _recipients_data_check(normalized)
    return normalized


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
