"""The shared base of backends that post to a social account (X, a Facebook Page, a VK wall).

They post to an *account*, not to a person. The address is the account the post goes to:
the recipient's key (``x_account``, ``facebook_page``, ``vk_owner``; another one with the
``address_key`` option) or, when the recipient has none, the channel's own target option
(``account``, ``page_id``, ``owner_id``). With a target in the config, one recipient with no
keys at all makes one post::

    notify("product-launch", [{}], {"name": "Rocket"}, channels=["x"])

and a campaign posts once per channel: its other recipients share the address and are
skipped as "duplicate address".

The post is the template's text (the subject when there is no text). A link comes from
``notify(extra={"link": …})`` (or ``extra["url"]``, as push backends use it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from django import forms
from django.core.exceptions import ValidationError

from channels.backends.base import Outgoing, PermanentError
from channels.backends.fields import SOCIAL_FIELDS
from channels.backends.http import HttpBackend, HttpConfigForm


class SocialConfigForm(HttpConfigForm):
    """``base_url``, ``timeout``, ``address_key``, and a default target checked with the
    backend's address format (``target_field`` names it; ``target_validator`` checks it)."""

    address_key = forms.CharField(
        required=False,
        help_text="Recipient key to read the target account from (default: the backend's).",
    )

    target_field: ClassVar[str] = ""
    target_validator: ClassVar[Callable[[str], None] | None] = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        value = cleaned.get(self.target_field) if self.target_field else None
        if value not in (None, "") and type(self).target_validator is not None:
            try:
                type(self).target_validator(str(value).strip())
            except ValidationError as error:
                self.add_error(self.target_field, error)
        return cleaned


class SocialBackend(HttpBackend):
    """Posts the text of each message to the account its address names."""

    template_fields = SOCIAL_FIELDS
    reaches_people = False  # a post goes to the site's account, not to the recipient
    category = "social"
    #: The option naming the channel's default target (``account``, ``page_id``, ``owner_id``).
    target_option: ClassVar[str] = ""

    def default_target(self) -> str | None:
        value = self.options.get(self.target_option) if self.target_option else None
        if value in (None, ""):
            return None
        return str(value).strip()

    def address(self, recipient: Mapping[str, Any]) -> str | None:
        """The recipient's own target, else the channel's default target, else None."""
        return super().address(recipient) or self.default_target()

    def post_text(self, message: Outgoing) -> str:
        return (message.text or message.subject).strip()

    def post_link(self, message: Outgoing) -> str:
        """``extra["link"]`` (or ``extra["url"]``) when it is a string, else ""."""
        for name in ("link", "url"):
            value = message.extra.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return ""

    def require_text(self, text: str, *, link: str = "") -> None:
        if not text and not link:
            raise PermanentError(f"{self.verbose_name}: nothing to post (the text is empty)")
