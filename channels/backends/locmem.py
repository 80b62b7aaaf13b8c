"""Keeps sent messages in ``outbox``, a module-level list: for tests of campaign logic.

Like Django's locmem email backend, it delivers nothing; ``outbox`` holds every message sent
by any channel using this backend in this process, in order.
"""

from __future__ import annotations

from channels.backends.base import AddressKeyConfigForm, BaseBackend, Outgoing
from channels.backends.fields import OTHER_FIELDS

outbox: list[Outgoing] = []


class LocmemBackend(BaseBackend):
    key = "locmem"
    verbose_name = "Local memory (tests)"
    address_key = "email"
    template_fields = OTHER_FIELDS

    ConfigForm = AddressKeyConfigForm

    def send_one(self, message: Outgoing) -> str:
        outbox.append(message)
        return f"locmem-{len(outbox)}"
