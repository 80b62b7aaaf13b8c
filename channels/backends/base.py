"""The backend contract.

A backend speaks one protocol or provider API. The caller opens it once for a batch
(``open()``), sends the batch (``send(messages)``: one ``SendResult`` per message, yielded
right after its send so it can be recorded at once), and closes it (``close()``). The base
class owns that loop; a backend implements ``send_one(message)``, returning the provider's id
or raising ``TransientError`` (retry), ``PermanentError`` (fail) or ``AddressRejected`` (fail,
and the address is dead). HTTP providers build on ``channels.backends.http.HttpBackend``,
whose ``send_one`` is itself a template method (request → post → parse → error table), so a
provider module is mostly field mapping:

    class MyBackend(HttpBackend):
        key = "my"
        verbose_name = "My provider"
        category = "sms"
        address_key = "phone"
        errors = {"unknown_number": "dead"}

        class ConfigForm(HttpConfigForm):
            token = forms.CharField()
            secret_fields = ("token",)

        def request(self, message: Outgoing) -> HttpRequest:
            return HttpRequest("POST", f"{self.base_url}/send", {"json": {...}})

What a backend can do is said by class flags (``category``, ``stores_messages``,
``reaches_people``, ``unsubscribe_headers``, ``browser_subscriptions``, ``status_callbacks``,
``polls_receipts``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from django import forms

from ..addresses import validate_email
from .fields import TemplateField, fields_declared

logger = logging.getLogger("notifier.channels")


class DeliveryError(Exception):
    """A send did not go through. ``str(error)`` is stored on the message."""


class TransientError(DeliveryError):
    """Try again later (timeouts, 429, 5xx, 4xx SMTP replies)."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Retrying cannot help (invalid address, 5xx SMTP reply, rejected by the provider)."""


class AddressRejected(PermanentError):
    """The provider says the address is dead (unregistered token, blocked bot, unknown
    number): the message fails and the address is deactivated, so nothing is sent to it
    again."""


class ConfigurationError(Exception):
    """A channel's options are invalid; the message names the options at fault."""


#: What a provider's error means for the message: retry it, fail it, or fail it and
#: deactivate the address.
ErrorKind = Literal["transient", "permanent", "dead"]


def delivery_error(
    kind: ErrorKind, text: str, *, retry_after: float | None = None
) -> DeliveryError:
    """The ``DeliveryError`` of ``kind`` (``retry_after`` only matters for a transient one)."""
    if kind == "transient":
        return TransientError(text, retry_after=retry_after)
    if kind == "dead":
        return AddressRejected(text)
    if kind == "permanent":
        return PermanentError(text)
    raise ValueError(f"unknown error kind {kind!r} (transient, permanent or dead)")


@dataclass(slots=True)
class Outgoing:
    """What a backend sends: one rendered message to one address.

    Backends get these, never model instances, so a backend cannot reach the database.
    """

    id: int
    uuid: str
    address: str
    subject: str = ""
    text: str = ""
    html: str = ""
    recipient: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    event_key: str = ""
    language: str = ""
    #: The message's own links (``unsubscribe_url``, ``preferences_url``), signed once when
    #: it is rendered, so the body and the headers carry the same ones. Empty for test sends.
    links: dict[str, str] = field(default_factory=dict)
    #: The template's ``link`` and ``image`` fields (push: opened on tap, shown with it).
    link: str = ""
    image: str = ""
    #: The template's JSON body (webhooks), parsed; None when the template has none.
    body: Any = None


@dataclass(slots=True)
class SendResult:
    outgoing: Outgoing
    provider_id: str = ""
    error: DeliveryError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class BaseConfigForm(forms.Form):
    """Validates a channel's options. List secret fields in ``secret_fields``: they are
    write-only in the admin and masked wherever a config is shown."""

    secret_fields: ClassVar[tuple[str, ...]] = ()


class AddressKeyConfigForm(BaseConfigForm):
    """For backends that can read their address from any recipient key."""

    address_key = forms.CharField(
        required=False, help_text="Recipient key to read the address from (default: email)."
    )


#: What an end user knows a channel as; the preference centre groups channels by it.
CATEGORIES = ("email", "sms", "push", "chat", "inbox", "webhook", "social", "other")


class BaseBackend:
    """A backend's capabilities are class flags (``category``, ``stores_messages``,
    ``reaches_people``, ``unsubscribe_headers``, ``browser_subscriptions``,
    ``status_callbacks``, ``polls_receipts``): code that needs to know what a backend can do
    reads a flag, never ``issubclass()`` of a particular backend."""

    key: ClassVar[str] = ""
    verbose_name: ClassVar[str] = ""
    #: The recipient key this backend reads its address from (``email``, ``phone`` …).
    address_key: ClassVar[str | None] = None
    #: The template fields this backend uses (``channels.backends.fields``): what the template
    #: admin shows and checks. None: its category's usual fields; names stand for those.
    template_fields: ClassVar[tuple[TemplateField, ...]] = fields_declared(None, "other")
    ConfigForm: ClassVar[type[BaseConfigForm]] = BaseConfigForm
    #: True when the Message row is what the recipient reads (the in-app inbox): such rows
    #: are kept even for events that delete messages after processing.
    stores_messages: ClassVar[bool] = False
    #: False for a backend that posts to an account of the site's (a social page) rather
    #: than to a person: its channels are left out of people's preference centres.
    reaches_people: ClassVar[bool] = True
    #: What an end user knows the channel as (one of ``CATEGORIES``).
    category: ClassVar[str] = "other"
    #: True when a message carries one-click ``List-Unsubscribe`` headers and marketing
    #: messages an unsubscribe footer (email).
    unsubscribe_headers: ClassVar[bool] = False
    #: True when a web page can subscribe a browser to the channel (Web Push): the backend
    #: then has a ``public_key`` property, the key browsers subscribe with.
    browser_subscriptions: ClassVar[bool] = False
    #: The module of ``channels.webhooks`` that parses the provider's status callbacks for
    #: this backend ("twilio"), or "" when the provider posts none.
    status_callbacks: ClassVar[str] = ""
    #: True when delivery receipts are fetched by a periodic job calling ``receipts(ids)``
    #: (Expo).
    polls_receipts: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.category not in CATEGORIES:
            raise TypeError(
                f"{cls.__qualname__}.category is {cls.category!r}: not one of "
                f"{', '.join(CATEGORIES)}"
            )
        declared = cls.__dict__.get("template_fields")
        if declared is not None:  # names stand for the category's fields of those names
            cls.template_fields = fields_declared(tuple(declared), cls.category)
        elif "category" in cls.__dict__:  # a category of its own: its usual fields
            cls.template_fields = fields_declared(None, cls.category)

    def __init__(self, *, channel_key: str = "", options: Mapping[str, Any] | None = None):
        self.channel_key = channel_key
        self.options = self.clean_options(options or {}, channel_key=channel_key)

    # --- configuration ------------------------------------------------------------------
    @classmethod
    def clean_options(cls, options: Mapping[str, Any], *, channel_key: str = "") -> dict:
        """Validate ``options`` with the backend's config form; unknown names are an error."""
        form_class = cls.ConfigForm
        unknown = sorted(set(options) - set(form_class.base_fields))
        where = f"channel {channel_key!r}" if channel_key else cls.__name__
        if unknown:
            known = ", ".join(sorted(form_class.base_fields)) or "none"
            raise ConfigurationError(
                f"{where}: unknown option(s) {', '.join(map(repr, unknown))} for backend "
                f"{cls.dotted_path()} (known options: {known})"
            )
        form = form_class(data=dict(options))
        if not form.is_valid():
            problems = "; ".join(
                f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()
            )
            raise ConfigurationError(
                f"{where}: invalid options for {cls.dotted_path()}: {problems}"
            )
        return {name: form.cleaned_data[name] for name in options} | {
            name: value
            for name, value in form.cleaned_data.items()
            if name not in options and value not in (None, "")
        }

    @classmethod
    def secret_fields(cls) -> tuple[str, ...]:
        return tuple(cls.ConfigForm.secret_fields)

    @classmethod
    def dotted_path(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    # --- addresses ----------------------------------------------------------------------
    def recipient_key(self) -> str | None:
        """The recipient key read for the address: an ``address_key`` option, if the backend
        has one, else the class's ``address_key``."""
        return self.options.get("address_key") or self.address_key

    def address(self, recipient: Mapping[str, Any]) -> str | None:
        """The address of ``recipient`` on this channel, or None when it has none."""
        key = self.recipient_key()
        value = recipient.get(key) if key else None
        if value in (None, ""):
            return None
        return str(value).strip()

    def validate_address(self, address: str) -> None:
        """Raise ``ValidationError`` naming the problem when ``address`` is malformed.
        Email addresses are checked by default; backends add their own formats."""
        if self.recipient_key() == "email":
            validate_email(address)

    # --- sending ------------------------------------------------------------------------
    def open(self) -> None:
        """Open connections or sessions reused for a whole batch."""

    def close(self) -> None:
        """Release what ``open()`` took. Called even when the batch failed."""

    def send_one(self, message: Outgoing) -> str:
        """Deliver one message; return the provider's id (or ""). Raise TransientError or
        PermanentError when it did not go through."""
        raise NotImplementedError(f"{type(self).__name__} must implement send_one()")

    def classify(self, error: Exception) -> DeliveryError:
        """Map an unexpected exception from ``send_one`` to transient or permanent.
        Network-level failures retry; anything else is a bug in the payload: permanent."""
        if isinstance(error, (TimeoutError, ConnectionError, OSError)):
            return TransientError(f"{type(error).__name__}: {error}")
        return PermanentError(f"{type(error).__name__}: {error}")

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        """The send loop: one result per message, yielded right after its send so the caller
        can record it before the next one starts."""
        for message in messages:
            try:
                provider_id = self.send_one(message) or ""
            except DeliveryError as error:
                yield SendResult(message, error=error)
            except Exception as error:
                yield SendResult(message, error=self.classify(error))
            else:
                yield SendResult(message, provider_id=str(provider_id))

    def __enter__(self) -> BaseBackend:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send_test(
        self,
        address: str,
        *,
        subject: str = "",
        text: str = "",
        html: str = "",
        link: str = "",
        image: str = "",
        body: Any = None,
    ) -> str:
        """Send one message outside the outbox (the admin's "send test"). Returns the
        provider id; raises DeliveryError with the provider's text when it fails."""
        self.validate_address(address)
        outgoing = Outgoing(
            id=0,
            uuid=str(uuid.uuid4()),
            address=address,
            subject=subject,
            text=text,
            html=html,
            link=link,
            image=image,
            body=body,
        )
        try:  # a refused or silent server fails in open(): said like a failed send
            self.open()
            (result,) = list(self.send([outgoing]))
        except DeliveryError:
            raise
        except Exception as error:
            raise self.classify(error) from error
        finally:
            try:
                self.close()
            except Exception:  # the outcome is known already; closing cannot change it
                logger.warning(
                    "closing %s after a test send failed", type(self).__name__, exc_info=True
                )
        if result.error is not None:
            raise result.error
        return result.provider_id
