"""Availability windows, edited inline on their event or channel."""

from django.db import models
from unfold.admin import TabularInline
from unfold.overrides import FORMFIELD_OVERRIDES_INLINE

from campaigns.domain.untrusted_json import JSONFormField
from campaigns.domain.windows import Window, describe
from campaigns.models import AvailabilityWindow


class WindowInline(TabularInline):
    model = AvailabilityWindow
    fields = ("weekdays", "start_time", "end_time")
    extra = 0
    verbose_name_plural = "availability windows (in the recipient's time; none = any time)"
    formfield_overrides = {
        **FORMFIELD_OVERRIDES_INLINE,
        models.JSONField: {
            **FORMFIELD_OVERRIDES_INLINE[models.JSONField],
            "form_class": JSONFormField,
        },
    }


class EventWindowInline(WindowInline):
    fk_name = "event"


class ChannelWindowInline(WindowInline):
    fk_name = "channel"


def windows_summary(obj) -> str:
    """The summary shown in admin lists (e.g. Mon-Fri 09:00-18:00); uses prefetched windows."""
    windows = [Window.from_model(w) for w in obj.windows.all()]
    return f"{describe(windows)} in the recipient's time" if windows else "Any time"
