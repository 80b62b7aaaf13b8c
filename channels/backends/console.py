"""Writes each message to standard output: for development and demos."""

from __future__ import annotations

import sys
import threading

from channels.backends.base import AddressKeyConfigForm, BaseBackend, Outgoing
from channels.backends.fields import OTHER_FIELDS


class ConsoleBackend(BaseBackend):
    key = "console"
    verbose_name = "Console (prints messages)"
    address_key = "email"
    template_fields = OTHER_FIELDS

    ConfigForm = AddressKeyConfigForm

    _lock = threading.Lock()

    def send_one(self, message: Outgoing) -> str:
        lines = [
            f"--- notifier [{self.channel_key}] {message.uuid} to {message.address}",
            f"Subject: {message.subject}" if message.subject else "",
            message.text,
            "---",
        ]
        with self._lock:
            sys.stdout.write("\n".join(line for line in lines if line) + "\n")
            sys.stdout.flush()
        return ""
