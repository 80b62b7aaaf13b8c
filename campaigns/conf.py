"""Typed access to the ``NOTIFIER`` setting, and the one declaration of its options.

Every option Notifier reads lives under ``settings.NOTIFIER`` and is declared once, as an
``Option`` (name, type, default, doc): the domain's here on ``AppSettings``, the transport
layer's (``CHANNELS``, ``EMAIL_DOMAIN``, ``UNSUBSCRIBE_MAILTO``) in ``channels.conf``.
``app_settings.<NAME>`` reads it at the moment it is needed, so
``override_settings(NOTIFIER=...)`` in tests takes effect at once; ``settings.py`` reads each
from the environment as ``NOTIFIER_<NAME>`` through ``options_from_environment()`` (both
lists), so an option declared once cannot be missed there. No
other module reads ``settings.NOTIFIER`` (a test checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from channels.conf import ENV_PREFIX, Option
from channels.conf import OPTIONS as CHANNEL_OPTIONS

#: Variables with the prefix that are not options: settings.py reads them itself.
ENV_NOT_OPTIONS = frozenset({"NOTIFIER_LOG_LEVEL", "NOTIFIER_SECRET_KEYS"})


class AppSettings:
    EVENTS = Option(
        dict, {}, 'Events declared in code: ``{key: {"name": str, "variables": [...], ...}}``.'
    )
    QUEUE = Option(
        str,
        "notifier",
        "The django-rq queue of the transactional lane: what notify() writes, and the sweep.",
    )
    BULK_QUEUE = Option(
        str,
        "notifier-bulk",
        "The django-rq queue of the bulk lane: campaign chunks, their messages, dry runs. "
        "Workers take the transactional queue first.",
    )
    DRAIN_BUDGET = Option(
        float,
        0.5,
        "Seconds a bulk drain job, or a campaign chunk job sending its own messages, sends "
        "before it hands the rest to a new drain job at the end of the queue, so transactional "
        "jobs wait at most about this long.",
    )
    BATCH_SIZE = Option(int, 200, "How many message ids one dispatch job carries.")
    DRAIN_JOBS = Option(
        int,
        2,
        "How many drain jobs may take a lane's ready list at once: a second one is enqueued "
        "while more than a batch waits, so as many workers send a large notify() as this "
        "(set it to the number of workers).",
    )
    LEASE_SECONDS = Option(
        int, 300, "How long a claimed batch may stay in ``sending`` before the sweep reclaims it."
    )
    QUEUED_TIMEOUT = Option(
        int,
        600,
        "How long a ``queued`` row may wait for its job before the sweep enqueues it again "
        "(covers jobs lost with Redis).",
    )
    MAX_ATTEMPTS = Option(
        int, 5, "Default attempts per message, when its channel does not set its own."
    )
    RETRY_DELAY = Option(
        float, 30.0, "Seconds before the first retry; later retries multiply by RETRY_BACKOFF."
    )
    RETRY_BACKOFF = Option(float, 2.0, "Factor by which each retry's delay grows.")
    RETRY_JITTER = Option(
        float, 0.2, "Fraction of the delay added or removed at random (0.2 = ±20 %)."
    )
    CAMPAIGN_CHUNK = Option(
        int, 1000, "Recipients one campaign fan-out job writes (one transaction each)."
    )
    DRY_RUN_INLINE_LIMIT = Option(
        int,
        20000,
        "Audiences up to this size get their dry run in the page's request; larger ones in an "
        "RQ job whose progress the page shows.",
    )
    SWEEP_INTERVAL = Option(int, 5, "Seconds between two sweeps run by RQ's cron scheduler.")
    SWEEP_CHUNK = Option(
        int, 5000, "Rows one sweep statement claims at most; a sweep loops until nothing is due."
    )
    SWEEP_STALE_AFTER = Option(
        int,
        120,
        "Seconds after the last sweep pass ended at which ``/readyz`` and ``notifier_status`` "
        "call the sweep stale (the sweep is an RQ job: under a long queue it runs late).",
    )
    PUSH_RECEIPT_DELAY = Option(
        int,
        900,
        "Seconds after a push is sent before its Expo receipt is asked for (Expo advises "
        "about 15 minutes).",
    )
    PUSH_RECEIPT_MAX_AGE = Option(
        int,
        86400,
        "Seconds after which a push whose receipt never came is given up on: its "
        "``delivery_status`` becomes ``unknown`` (Expo keeps receipts about a day).",
    )
    PUSH_RECEIPT_INTERVAL = Option(
        int, 300, "Seconds between two polls of push receipts run by RQ's cron scheduler."
    )
    DEBUG_SEND = Option(
        bool, False, "Build and render messages, deliver nothing, end them in state ``debug``."
    )
    LINK_MAX_AGE = Option(
        int, 90 * 24 * 3600, "Seconds an unsubscribe or preference-centre link stays valid."
    )
    TRUSTED_PROXY_COUNT = Option(
        int,
        0,
        "How many proxies in front of the site append to ``X-Forwarded-For``: the client's "
        "address is the entry the outermost of them wrote. 0: ``REMOTE_ADDR`` (no proxy). Only "
        "right when the site cannot be reached except through them.",
    )
    API_TOKEN_FAILURE_LIMIT = Option(
        int, 10, "Failed ``Authorization: Bearer`` attempts from one address before it gets 429."
    )
    API_TOKEN_COOLOFF = Option(
        int, 900, "Seconds an address stays refused after its last failed bearer attempt."
    )
    DECISION_RETENTION_DAYS = Option(
        int,
        30,
        "Days the decision trail (why notify() or a campaign wrote no message for someone) is "
        "kept; the hourly retention job deletes older rows. 0: kept for ever.",
    )
    MESSAGE_RETENTION_DAYS = Option(
        int,
        90,
        "Days a finished message (sent, failed, cancelled, skipped, broken, debug) is kept, "
        "counted from the start of the day it was written; the hourly retention job then "
        "deletes it (after adding it to the daily counts) or, with RETENTION_MODE "
        '"content", drops its content. Unread inbox items are kept (INBOX_RETENTION_DAYS). '
        "0: kept for ever.",
    )
    ATTEMPT_RETENTION_DAYS = Option(
        int,
        30,
        "Days the delivery log of a finished message (its attempt rows) is kept. 0: for ever.",
    )
    INBOX_RETENTION_DAYS = Option(
        int,
        0,
        "Days an inbox item nobody has read (or archived) yet is kept past "
        "MESSAGE_RETENTION_DAYS. 0: until it is read or archived.",
    )
    RETENTION_MODE = Option(
        str,
        "delete",
        '"delete": old messages are deleted; "content": they stay as the record of what was '
        "sent, without their stored bodies and context.",
    )
    RETENTION_BATCH = Option(
        int,
        2000,
        "Rows one retention transaction deletes or changes at most (it loops), so it holds its "
        "row locks for a moment only.",
    )

    WEBHOOK_ALLOW_PRIVATE = Option(
        bool,
        False,
        "Status webhooks may post to loopback, private, link-local and reserved addresses "
        "(off: a URL whose host resolves to one is refused, against SSRF).",
    )
    WEBHOOK_TIMEOUT = Option(
        float, 10.0, "Seconds a status webhook's endpoint has to answer one delivery."
    )


#: Every option, in declaration order.
OPTIONS: tuple[Option, ...] = tuple(
    value for value in vars(AppSettings).values() if isinstance(value, Option)
)


def options_from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The options set in ``environ`` as ``NOTIFIER_<NAME>``, parsed by their type.

    A value its option's type refuses, or a ``NOTIFIER_`` variable that names no option (a
    typo would otherwise be ignored in silence), raises ImproperlyConfigured naming the
    variable, so the process stops at startup."""
    known = {option.env_name: option for option in (*OPTIONS, *CHANNEL_OPTIONS)}
    unknown = sorted(
        name
        for name in environ
        if name.startswith(ENV_PREFIX) and name not in known and name not in ENV_NOT_OPTIONS
    )
    if unknown:
        raise ImproperlyConfigured(
            f"unknown environment variable(s) {', '.join(unknown)}: no such NOTIFIER option "
            f"(known: {', '.join(sorted([*known, *ENV_NOT_OPTIONS]))})"
        )
    values = {}
    for name, option in known.items():
        if name not in environ:
            continue
        try:
            values[option.name] = option.parse(environ[name])
        except ValueError as error:
            raise ImproperlyConfigured(
                f"environment variable {name}={environ[name]!r} is not a valid "
                f"{option.type.__name__}: {error}"
            ) from None
    return values


app_settings = AppSettings()
