"""Example SMS: the worked example of docs/adding-a-channel.md (myproject/sms.py there)."""

from django import forms

from channels.backends.base import AddressRejected, Outgoing
from channels.backends.http import HttpBackend, HttpConfigForm, response_json, validate_e164


class ExampleSmsBackend(HttpBackend):
    key = "example-sms"
    verbose_name = "Example SMS"
    address_key = "phone"  # the recipient key (and ChannelAddress kind) holding the address
    template_fields = ("text",)
    default_base_url = "https://api.example-sms.com"

    class ConfigForm(HttpConfigForm):  # brings base_url and timeout
        token = forms.CharField(help_text="API token from the provider's dashboard.")
        sender = forms.CharField(max_length=11, help_text="Sender name or number.")
        secret_fields = ("token",)  # write-only in the admin, masked everywhere

    def client_options(self) -> dict:  # open() makes one httpx.Client per batch with these
        return {
            "base_url": self.base_url,
            "headers": {"Authorization": f"Bearer {self.options['token']}"},
        }

    def validate_address(self, address: str) -> None:  # notify() checks every recipient
        validate_e164(address)

    def send_one(self, message: Outgoing) -> str:
        response = self.post(  # timeouts and connection errors raise TransientError
            "/v1/messages",
            json={"to": message.address, "from": self.options["sender"], "text": message.text},
        )
        answer = response_json(response) or {}
        if response.status_code == 404 and answer.get("error") == "unknown_number":
            raise AddressRejected(f"Example SMS: {answer.get('message', 'unknown number')}")
        if not response.is_success:  # 429 / 5xx transient with Retry-After, other 4xx permanent
            raise self.error_for_status(response, answer.get("message", ""))
        return answer["id"]  # stored as the message's provider_id
