"""django-anymail's webhook URLs (``/anymail/<esp>/tracking/`` …), refused while no webhook
secret is configured.

anymail checks HTTP basic auth against ``ANYMAIL["WEBHOOK_SECRET"]`` itself (a wrong or
missing ``Authorization`` gets 400), but only when the secret is set: without it anymail
warns and accepts any POST, so anyone who learns a message id could mark it bounced and opt
its address out. Here each of anymail's views answers 403 instead, until the secret is set.
"""

from __future__ import annotations

import functools
import logging

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.utils import get_anymail_setting
from django.http import HttpResponseForbidden
from django.urls import URLPattern

from campaigns.views.hooks import json_webhook

logger = logging.getLogger("notifier.tracking")

app_name = anymail_urls.app_name


def webhook_secrets() -> list[str]:
    """The accepted ``user:password`` strings, read as anymail reads them."""
    secrets = get_anymail_setting("webhook_secret", default=[])
    if isinstance(secrets, str):
        secrets = [secrets]
    return [secret for secret in secrets if secret]


def require_webhook_secret(view):
    """Refuse every request with 403 while no webhook secret is configured."""

    @functools.wraps(view)  # keeps anymail's csrf_exempt and login_not_required marks
    def guarded(request, *args, **kwargs):
        if not webhook_secrets():
            logger.warning(
                "refused an ESP webhook (%s): ANYMAIL_WEBHOOK_SECRET is not set", request.path
            )
            return HttpResponseForbidden(
                "ESP webhooks are off: set ANYMAIL_WEBHOOK_SECRET (ANYMAIL['WEBHOOK_SECRET'])."
            )
        return view(request, *args, **kwargs)

    return guarded


def shape_checked(view):
    """anymail's view, with a payload its parser cannot read (JSON, but not the ESP's shape)
    answered 400 as an invalid webhook, not 500: a 500 asks the ESP to post it again, and
    the same body would fail again forever. Errors past the parser (the receivers: the
    database down) still answer 500, so the ESP retries them."""
    view_class = view.view_class

    class ShapeChecked(view_class):
        def parse_events(self, request):
            try:
                return list(super().parse_events(request))
            except AnymailWebhookValidationFailure:
                raise
            except Exception as error:
                logger.warning(
                    "refused an ESP webhook (%s): not %s's tracking payload: %s: %s",
                    request.path,
                    self.esp_name,
                    type(error).__name__,
                    error,
                )
                raise AnymailWebhookValidationFailure(
                    f"This is not a {self.esp_name} tracking webhook payload "
                    f"({type(error).__name__})."
                ) from error

    ShapeChecked.__name__ = ShapeChecked.__qualname__ = view_class.__name__
    return ShapeChecked.as_view(**view.view_initkwargs)


urlpatterns = [
    URLPattern(
        pattern.pattern,
        require_webhook_secret(json_webhook(shape_checked(pattern.callback))),
        pattern.default_args,
        pattern.name,
    )
    # Tracking only (not anymail's inbound webhooks, which Notifier does not use), and its
    # bodies parsed as untrusted JSON first (anymail itself uses plain json.loads).
    for pattern in anymail_urls.urlpatterns
    if pattern.name.endswith("_tracking_webhook")
]
