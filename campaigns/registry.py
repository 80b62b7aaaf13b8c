"""Events declared in code.

In ``settings.NOTIFIER["EVENTS"]``::

    "order-shipped": {
        "name": "Order shipped",
        "variables": [{"name": "order_id", "label": "Order", "sample": "A-1001"}],
    }

or from any installed app's ``notifications.py``::

    from campaigns.registry import event

    event("order-shipped", name="Order shipped",
          variables={"order_id": {"label": "Order", "sample": "A-1001"}})

``sync_events()`` (run after ``migrate`` and by ``manage.py sync_notifications``) writes them
into Event rows, so operators see them in the admin and attach templates.
"""

from __future__ import annotations

import inspect
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError

from campaigns.conf import app_settings
from campaigns.domain.variables import validate_variables
from campaigns.models import Event
from channels.declarations import sync_channels, sync_declared

_declared: dict[str, dict[str, Any]] = {}


def _variables(spec: Any) -> list[dict[str, Any]]:
    if isinstance(spec, dict):
        spec = [{"name": name, **(value or {})} for name, value in spec.items()]
    spec = [{"name": v} if isinstance(v, str) else dict(v) for v in (spec or [])]
    try:
        validate_variables(spec)
    except ValidationError as error:
        raise ImproperlyConfigured(" ".join(error.messages)) from None
    return spec


#: Event options beyond name, description, variables and language, with their defaults.
OPTIONS = {
    "trigger": "default",
    "delete_after_processing": False,
    "check_validity": "",
    "user_configurable": False,
    "mandatory": False,
    "mandatory_reason": "",
    "marketing": False,
    "unsubscribe_scope": "event",
}


def event(
    key: str,
    *,
    name: str = "",
    description: str = "",
    variables: Any = None,
    default_language: str = "",
    **options: Any,
) -> None:
    """Declare an event from an app's ``notifications.py``; ``options`` are those of
    ``OPTIONS`` (trigger, delete_after_processing, check_validity)."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ImproperlyConfigured(f"event {key!r}: unknown option(s) {', '.join(sorted(unknown))}")
    module = inspect.getmodule(inspect.stack()[1].frame)
    _declared[key] = {
        "name": name or key,
        "description": description,
        "variables": _variables(variables),
        "default_language": default_language,
        **OPTIONS,
        **options,
        "declared_in": module.__name__ if module else "notifications",
    }


def declared_events() -> dict[str, dict[str, Any]]:
    events = dict(_declared)
    for key, spec in app_settings.EVENTS.items():
        events[key] = {
            "name": spec.get("name", key),
            "description": spec.get("description", ""),
            "variables": _variables(spec.get("variables")),
            "default_language": spec.get("default_language", ""),
            **{name: spec.get(name, default) for name, default in OPTIONS.items()},
            "declared_in": "settings.NOTIFIER['EVENTS']",
        }
    return events


def sync_events() -> list[str]:
    """Write each declared event into an Event row (see ``channels.declarations.sync_declared``)."""
    return sync_declared(Event, declared_events())


def sync_all() -> dict[str, list[str]]:
    return {"channels": sync_channels(), "events": sync_events()}
