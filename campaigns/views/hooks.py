"""Provider callbacks (webhooks). They carry no session: the provider's signature is what
authorises them, checked by the service before anything changes."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..services.delivery_status import HookForbidden, HookNotFound, sms_status_hook


@csrf_exempt  # Twilio posts it; X-Twilio-Signature authorises it
@require_POST
def twilio_status(request: HttpRequest, channel_key: str) -> HttpResponse:
    """Twilio's message status callback for one channel: 204 once recorded (also for a
    message we do not know), 403 when the signature is missing or wrong, 404 for a key that
    names no Twilio channel."""
    try:
        sms_status_hook(
            channel_key=channel_key,
            path=request.get_full_path(),
            params=dict(request.POST.lists()),
            signature=request.headers.get("X-Twilio-Signature", ""),
        )
    except HookNotFound:
        return HttpResponse("no such channel", status=404, content_type="text/plain")
    except HookForbidden:
        return HttpResponse("invalid signature", status=403, content_type="text/plain")
    return HttpResponse(status=204)
