"""Provider callbacks (webhooks). They carry no session: the provider's signature is what
authorises them, checked by the service before anything changes."""

from __future__ import annotations

import functools

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from campaigns.domain.untrusted_json import InvalidJSON, json_depth_check, json_parse
from campaigns.tracking.delivery import twilio_callback_apply
from channels.webhooks.base import WebhookForbidden, WebhookNotFound

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def json_webhook(view):
    """Guards a third-party webhook view that parses JSON itself (django-anymail's): a POST
    body that is not bounded JSON — nested too deep, too large, not UTF-8, not JSON, not an
    object or array at the top — gets a 400 naming the problem before the view parses it. A
    form's fields are checked for depth (ESPs such as Mandrill post JSON in a form field)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if request.method == "POST":
            try:
                if request.content_type in FORM_TYPES:
                    for name, values in request.POST.lists():
                        for value in values:
                            json_depth_check(value, what=f"the field {name!r}")
                else:  # JSON, whatever it is labelled (Amazon SNS says text/plain)
                    json_parse(request.body, expect=(dict, list))
            except InvalidJSON as error:
                return HttpResponse(str(error), status=400, content_type="text/plain")
        return view(request, *args, **kwargs)

    return wrapper


@csrf_exempt  # Twilio posts it; X-Twilio-Signature authorises it
@require_POST
def twilio_status(request: HttpRequest, channel_key: str) -> HttpResponse:
    """Twilio's message status callback for one channel: 204 once recorded (also for a
    message we do not know), 403 when the signature is missing or wrong, 404 for a key that
    names no Twilio channel."""
    try:
        twilio_callback_apply(
            channel_key=channel_key,
            path=request.get_full_path(),
            params=dict(request.POST.lists()),
            signature=request.headers.get("X-Twilio-Signature", ""),
        )
    except WebhookNotFound:
        return HttpResponse("no such channel", status=404, content_type="text/plain")
    except WebhookForbidden:
        return HttpResponse("invalid signature", status=403, content_type="text/plain")
    return HttpResponse(status=204)
