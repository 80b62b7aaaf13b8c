"""System checks of the notification domain's settings."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register
from django.urls import get_resolver

from campaigns.tracking.urls import webhook_secrets

#: anymail's test backend sends nothing, so no ESP will ever call back about it.
NOT_AN_ESP = {"anymail.backends.test.EmailBackend"}


def esp_mailers() -> dict[str, str]:
    """Mailer alias → backend, for each mailer that sends through a django-anymail ESP."""
    return {
        alias: backend
        for alias, config in getattr(settings, "MAILERS", {}).items()
        if (backend := str(config.get("BACKEND", ""))).startswith("anymail.backends.")
        and backend not in NOT_AN_ESP
    }


@register("notifier")
def check_esp_webhook_secret(app_configs=None, **kwargs):
    """Tracking is enabled when the site routes anymail's webhooks (the ``anymail`` URL
    namespace) and a mailer sends through an ESP: then its webhooks need a secret, else they
    are refused (403) and no delivery, bounce or complaint is ever recorded."""
    esps = esp_mailers()
    if not esps or webhook_secrets() or "anymail" not in get_resolver().namespace_dict:
        return []
    named = ", ".join(f"{alias!r} ({backend})" for alias, backend in sorted(esps.items()))
    return [
        Error(
            f"settings.MAILERS sends through an ESP, {named}, but ANYMAIL['WEBHOOK_SECRET'] is "
            "not set: its tracking webhooks (/anymail/<esp>/tracking/) refuse every event, and "
            "anyone could forge one if they did not.",
            hint="Set ANYMAIL_WEBHOOK_SECRET in the environment to a random 'user:password' "
            "and give the ESP the webhook URL with it (https://user:password@host/anymail/"
            "<esp>/tracking/). Tracking counts as enabled when the URLconf includes anymail's "
            "URLs and a mailer uses an anymail ESP backend (anymail's test backend aside).",
            id="notifier.E010",
        )
    ]


#: Shorter bearer tokens could be guessed; /metrics counts no failed tries.
METRICS_TOKEN_MIN_LENGTH = 32


@register("notifier")
def check_metrics_token(app_configs=None, **kwargs):
    """A metrics token is a password for /metrics: a short one would be guessed."""
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token or len(token) >= METRICS_TOKEN_MIN_LENGTH:
        return []
    return [
        Error(
            f"METRICS_TOKEN is {len(token)} characters long: /metrics needs a bearer token of at "
            f"least {METRICS_TOKEN_MIN_LENGTH}.",
            hint="Make one with python -c 'import secrets; print(secrets.token_urlsafe(32))', "
            "or leave METRICS_TOKEN unset (then /metrics answers 404).",
            id="notifier.E020",
        )
    ]
