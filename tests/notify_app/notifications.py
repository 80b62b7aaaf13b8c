"""Declarations a host app would make: found by autodiscovery, synced after migrate."""

from campaigns.registry import event
from channels.declarations import channel

channel("memory", backend="locmem", name="Memory outbox")

event(
    "password-reset",
    name="Password reset",
    description="Sent when a user asks for a new password.",
    variables={"reset_url": {"label": "Reset link", "sample": "https://example.com/r/abc"}},
)
