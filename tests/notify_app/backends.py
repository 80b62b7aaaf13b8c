"""A push-style backend for tests: a provider that calls tokens starting with "dead" dead."""

from channels.backends.base import AddressRejected, BaseBackend, Outgoing


class TokenBackend(BaseBackend):
    key = "test-push"
    verbose_name = "Test push"
    address_key = "push_token"

    def send_one(self, message: Outgoing) -> str:
        if message.address.startswith("dead"):
            raise AddressRejected(f"DeviceNotRegistered: {message.address}")
        return f"ticket-{message.id}"
