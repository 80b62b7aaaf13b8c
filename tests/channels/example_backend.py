"""Example SMS: the worked example of docs/adding-a-channel.md (myproject/sms.py there)."""

from django import forms

from channels.addresses import validate_phone
from channels.backends.http import HttpBackend, HttpConfigForm, HttpRequest


class ExampleSmsBackend(HttpBackend):
    key = "example-sms"
    verbose_name = "Example SMS"
    category = "sms"  # what end users know it as: email, sms, push, chat, inbox, social …
    address_key = "phone"  # the recipient key (and ChannelAddress kind) holding the address
    template_fields = ("text",)
    default_base_url = "https://api.example-sms.com"
    # The provider's error codes: "transient" (retry), "permanent" (fail the message) or
    # "dead" (fail it and deactivate the address). Codes not listed go by the HTTP status:
    # 408, 425, 429 and 5xx retry (honouring Retry-After), other 4xx fail.
    errors = {"unknown_number": "dead", "throttled": "transient"}

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
        validate_phone(address)

    def request(self, message) -> HttpRequest:  # timeouts and network errors retry
        payload = {"to": message.address, "from": self.options["sender"], "text": message.text}
        return HttpRequest("POST", "/v1/messages", {"json": payload})

    # A 2xx answer is a success and its JSON "id" the message's provider_id (override
    # parse() when the provider answers otherwise). A refused request: the provider's code
    # (looked up in `errors`) and the text operators read on the message.
    def provider_code(self, response, answer) -> tuple:
        if isinstance(answer, dict) and answer.get("error"):
            return answer["error"], f"Example SMS: {answer.get('message', answer['error'])}"
        return None, self.http_text(response)
