"""Errors raised to callers of ``notify()``. Each names the problem precisely; when one is
raised nothing has been written."""

from __future__ import annotations


class NotifierError(Exception):
    pass


class UnknownEvent(NotifierError, LookupError):
    def __init__(self, key: str, *, inactive: bool = False):
        self.key = key
        state = "is inactive" if inactive else "does not exist"
        super().__init__(
            f"event {key!r} {state} (declare it in NOTIFIER['EVENTS'], a "
            "notifications.py module, or the admin)"
        )


class UnknownChannel(NotifierError, LookupError):
    def __init__(self, keys: list[str], *, known: list[str]):
        self.keys = keys
        super().__init__(
            f"unknown or inactive channel(s): {', '.join(map(repr, keys))}; "
            f"active channels are: {', '.join(known) or 'none'}"
        )


class InvalidContext(NotifierError, ValueError):
    pass


class InvalidArgument(InvalidContext):
    """An argument of ``notify()`` or ``send_template()`` other than the context and the
    recipients has the wrong type or an unusable value; ``argument`` names it and the message
    starts with it. (A subclass of InvalidContext, which some of these cases raised before.)"""

    def __init__(self, argument: str, problem: str):
        self.argument = argument
        self.problem = problem
        super().__init__(f"{argument} {problem}")


class MissingVariables(InvalidContext):
    def __init__(self, event_key: str, names: list[str]):
        self.names = names
        super().__init__(
            f"context for event {event_key!r} is missing declared variable(s): {', '.join(names)}"
        )


class InvalidRecipient(NotifierError, ValueError):
    def __init__(self, index: int, problem: str):
        self.index = index
        self.problem = problem
        super().__init__(f"recipient #{index + 1}: {problem}")


class DuplicateNotification(NotifierError):
    """A once-behaviour refused a trigger (raised with ``strict=True``; else a skip)."""

    def __init__(self, event_key: str, keys: list[str]):
        self.keys = keys
        super().__init__(
            f"event {event_key!r} was already triggered for {len(keys)} recipient address(es) "
            f"under its trigger behaviour (first: {keys[0]})"
        )


class IdempotencyConflict(NotifierError):
    def __init__(self, key: str):
        self.key = key
        super().__init__(
            f"idempotency key {key!r} was used before with a different payload; "
            "use a new key for a different notification"
        )


class UnknownTemplate(NotifierError, LookupError):
    def __init__(self, slug: str):
        self.slug = slug
        super().__init__(f"no active, published template with slug {slug!r}")


class CampaignError(NotifierError):
    """A campaign cannot do what was asked; the message says why."""
