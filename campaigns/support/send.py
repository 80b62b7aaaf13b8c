"""The support desk's "Send a message": an ad-hoc text to the person whose timeline is open,
on a channel Support picks, through ``notify_text()`` (so the outbox, opt-outs, retries and the
timeline all see it like any other message)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from campaigns.outbox.adhoc import TEXT_LENGTH, notify_text
from campaigns.outbox.catalog import catalog
from campaigns.outbox.plan import NotifyResult
from campaigns.support.timeline import Person
from channels.models import ChannelConfig


def sendable_channels() -> list[ChannelConfig]:
    """The active channels, by name (from the catalog: no query when it is warm)."""
    return sorted(catalog().active.values(), key=lambda channel: channel.name.lower())


class SendMessageForm(forms.Form):
    channel = forms.ChoiceField(help_text="Where the message goes")
    subject = forms.CharField(max_length=200, required=False)
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}),
        max_length=TEXT_LENGTH,
        strip=False,
        help_text="Sent exactly as written: plain text, nothing in it is read as code.",
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["channel"].choices = [(c.key, c.name) for c in sendable_channels()]

    def clean_subject(self) -> str:
        subject = self.cleaned_data["subject"]
        if "\n" in subject or "\r" in subject:
            raise forms.ValidationError("One line only.")
        return subject

    def clean_text(self) -> str:
        text = self.cleaned_data["text"].replace("\r\n", "\n")  # as the browser sent it
        if not text.strip():
            raise forms.ValidationError("Write the message.")
        return text


@dataclass(slots=True)
class SendOutcome:
    result: NotifyResult

    @property
    def queued(self) -> bool:
        return bool(self.result.messages)

    @property
    def why_not(self) -> str:
        return ", ".join(sorted({skip.reason for skip in self.result.skipped})) or "no address"


def person_recipient(person: Person, channel: ChannelConfig) -> Any:
    """Whom ``notify_text`` gets for ``person`` on ``channel``: their user (their addresses
    come with it), a contact's email and phone, or the bare address under the key the
    channel reads."""
    if person.user_id is not None:
        user = get_user_model().objects.filter(pk=person.user_id).first()
        if user is not None:
            return user
    if person.kind == "address":
        backend = catalog().backends.get(channel.pk)
        key = backend.recipient_key() if backend and not isinstance(backend, Exception) else None
        return {key or "email": person.key}
    recipient: dict[str, str] = {}
    for address in person.addresses:
        recipient["email" if "@" in address else "phone"] = address
    return recipient


def support_message_send(
    *, person: Person, channel_key: str, subject: str, text: str, sender: Any
) -> SendOutcome:
    """Send the text to the person on the channel, through the outbox; raises what
    ``notify_text`` raises (NotifierError), nothing written then."""
    channel = catalog().active.get(channel_key)
    recipient = person_recipient(person, channel) if channel is not None else {}
    result = notify_text(
        recipient, subject=subject, text=text, channels=[channel_key], trigger_user=sender
    )
    return SendOutcome(result)
