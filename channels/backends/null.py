"""Accepts every message and delivers nothing: for benchmarks of the send path and for sites
that want a channel switched off without losing its templates."""

from __future__ import annotations

from channels.backends.base import AddressKeyConfigForm, BaseBackend, Outgoing
from channels.backends.fields import OTHER_FIELDS


class NullBackend(BaseBackend):
    key = "null"
    verbose_name = "Null (accepts and discards)"
    address_key = "email"
    template_fields = OTHER_FIELDS

    ConfigForm = AddressKeyConfigForm

    def send_one(self, message: Outgoing) -> str:
        return ""
