"""Web Push (RFC 8030) to browsers, with VAPID (RFC 8292), through pywebpush.

The address is the browser's push subscription, as JSON, under the recipient key
``webpush``: ``{"endpoint": "https://…", "keys": {"p256dh": "…", "auth": "…"}}`` (what
``PushSubscription.toJSON()`` gives; the inbox page registers it as a ``ChannelAddress``).
Each message is a JSON payload, encrypted for the subscription (``aes128gcm``, RFC 8291):

    {"title": subject, "body": text, "url": extra["url"], "data": {"notifier_id": uuid,
     "event": key, …extra["data"]}}

(plus ``icon``, ``badge``, ``tag`` from ``extra`` and the message's ``lang`` when set),
POSTed to the subscription's endpoint with ``Authorization: vapid t=<JWT>, k=<public key>``
(the JWT signed with the channel's VAPID key, ``aud`` the endpoint's origin), ``TTL`` and
``Urgency``. One HTTP client carries a whole batch.

The push service answers 201 with a ``Location`` (stored as the provider id); 404 and 410
mean the subscription is gone (``AddressRejected``: the address is deactivated); 408, 425, 429
and 5xx are retried, honouring ``Retry-After``; 400, 403 (a VAPID key the subscription was
not made with), 413 (payload too large), redirects and other answers fail the message with
the service's text.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from py_vapid import Vapid
from pywebpush import WebPusher

from .base import BaseConfigForm, Outgoing, PermanentError
from .fields import PUSH_FIELDS
from .http import HttpBackend, HttpRequest

#: The largest plaintext a push service takes: 4096 bytes of aes128gcm record, less its
#: 86-byte header, 16-byte tag and 1-byte padding delimiter (RFC 8291 section 4).
MAX_PAYLOAD = 4096 - 86 - 16 - 1
#: The longest TTL push services keep a message (FCM: 28 days).
MAX_TTL = 28 * 86400
DEFAULT_TTL = 86400
URGENCIES = ("very-low", "low", "normal", "high")
#: A VAPID JWT lives 12 hours (RFC 8292 allows up to 24).
JWT_LIFETIME = 12 * 3600
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
PEM = re.compile(r"-----BEGIN [A-Z ]+-----(?P<body>[A-Za-z0-9+/=\s]+)-----END [A-Z ]+-----")
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


def b64url_decode(value: str) -> bytes:
    """Decode base64url, with or without padding (also accepts the standard alphabet)."""
    value = value.strip().replace("+", "-").replace("/", "_")
    if not BASE64URL.match(value):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- VAPID keys ---------------------------------------------------------------------------------


def load_vapid_key(value: str) -> Vapid:
    """A VAPID signer from a P-256 private key: PEM (PKCS#8 or SEC1, newlines optional), or
    base64url of the raw 32-byte key or of its DER. Raises ``ValueError`` naming the problem."""
    value = (value or "").strip()
    pem = PEM.search(value)
    try:
        if pem:
            der = base64.b64decode("".join(pem.group("body").split()), validate=True)
            key = serialization.load_der_private_key(der, password=None)
        else:
            raw = b64url_decode(value.replace("\n", ""))
            if len(raw) == 32:
                key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
            else:
                key = serialization.load_der_private_key(raw, password=None)
    except (ValueError, TypeError, binascii.Error) as error:
        raise ValueError(
            "not a P-256 private key: paste the PEM, or the base64url raw key "
            f"(e.g. from `vapid --gen`) ({type(error).__name__})"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("not a P-256 (prime256v1) elliptic-curve private key, as VAPID needs")
    return Vapid(key, conf={"no-strict": True})  # the subject is validated by the form


def application_server_key(vapid: Vapid) -> str:
    """The public key as the browser's ``applicationServerKey`` wants it: base64url of the
    uncompressed point (65 bytes)."""
    return b64url_encode(
        vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


def validate_vapid_subject(value: str) -> None:
    """RFC 8292: a ``mailto:`` address or an ``https:`` URL the push service can contact."""
    if value.startswith("mailto:"):
        try:
            validate_email(value.removeprefix("mailto:"))
        except ValidationError:
            raise ValidationError(f"{value!r} is not a valid mailto: address") from None
        return
    if value.startswith("https://"):
        try:
            URLValidator(schemes=["https"])(value)
        except ValidationError:
            raise ValidationError(f"{value!r} is not a valid https: URL") from None
        return
    raise ValidationError(
        f"{value!r} is neither a mailto: address nor an https: URL (e.g. mailto:ops@example.com)"
    )


# --- subscriptions ------------------------------------------------------------------------------


def parse_subscription(value: str | Mapping[str, Any]) -> dict[str, Any]:
    """The subscription ``{"endpoint", "keys": {"p256dh", "auth"}}`` from its JSON (or a
    mapping), checked: an https endpoint (http only on loopback), a P-256 public key and a
    16-byte auth secret. Raises ``ValidationError`` naming what is wrong."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise ValidationError(f"the push subscription is not valid JSON ({error})") from None
    if not isinstance(value, Mapping):
        raise ValidationError(
            'the push subscription must be a JSON object {"endpoint": …, "keys": {…}}'
        )
    endpoint = value.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise ValidationError("the push subscription has no endpoint")
    parts = urlsplit(endpoint)
    secure = parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    )
    if not secure or not parts.hostname:
        raise ValidationError(
            f"the push subscription's endpoint {endpoint[:100]!r} is not an https URL"
        )
    keys = value.get("keys")
    if not isinstance(keys, Mapping):
        raise ValidationError('the push subscription has no "keys" (p256dh and auth)')
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    try:
        point = b64url_decode(p256dh) if isinstance(p256dh, str) else b""
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, binascii.Error):
        raise ValidationError(
            "the push subscription's keys.p256dh is not a base64url P-256 public key"
        ) from None
    try:
        secret = b64url_decode(auth) if isinstance(auth, str) else b""
    except (ValueError, binascii.Error):
        secret = b""
    if len(secret) != 16:
        raise ValidationError("the push subscription's keys.auth is not a base64url 16-byte secret")
    return {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}


def subscription_json(subscription: Mapping[str, Any]) -> str:
    """The one way a subscription is stored: compact JSON, endpoint first, so the address of
    one endpoint is always the same string (and starts with ``endpoint_prefix``)."""
    keys = subscription["keys"]
    return json.dumps(
        {
            "endpoint": subscription["endpoint"],
            "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]},
        },
        separators=(",", ":"),
    )


def endpoint_prefix(endpoint: str) -> str:
    """How every stored address of ``endpoint`` begins (see ``subscription_json``)."""
    return '{"endpoint":' + json.dumps(endpoint) + ","


def audience(endpoint: str) -> str:
    """The VAPID ``aud``: the origin of the push service."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


# --- the backend --------------------------------------------------------------------------------


class WebPushConfigForm(BaseConfigForm):
    vapid_private_key = forms.CharField(
        help_text="The VAPID private key (P-256): PEM, or the base64url raw key. "
        "Generate one with `vapid --gen` (see the README)."
    )
    vapid_public_key = forms.CharField(
        required=False,
        help_text="The matching public key (base64url, the browser's applicationServerKey); "
        "derived from the private key when empty.",
    )
    vapid_subject = forms.CharField(
        help_text="Who the push services can contact: mailto:ops@example.com or an https: URL."
    )
    ttl = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_TTL,
        help_text=f"Seconds the push service keeps a message for an offline browser "
        f"(default {DEFAULT_TTL}).",
    )
    urgency = forms.ChoiceField(
        required=False,
        choices=[("", "the service's default (normal)"), *((u, u) for u in URGENCIES)],
        help_text="RFC 8030 Urgency: how eagerly a device on battery wakes up for it.",
    )
    timeout = forms.FloatField(
        required=False,
        min_value=0.1,
        max_value=120,
        help_text="Seconds to wait for the push service (connect and each read); default 10.",
    )

    secret_fields = ("vapid_private_key",)

    def clean_vapid_private_key(self) -> str:
        value = self.cleaned_data["vapid_private_key"]
        try:
            load_vapid_key(value)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        return value

    def clean_vapid_subject(self) -> str:
        value = self.cleaned_data["vapid_subject"].strip()
        validate_vapid_subject(value)
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        public, private = data.get("vapid_public_key", "").strip(), data.get("vapid_private_key")
        if public and private:
            derived = application_server_key(load_vapid_key(private))
            if public.rstrip("=") != derived:
                self.add_error(
                    "vapid_public_key",
                    f"does not match the private key (its public key is {derived})",
                )
        return data


class WebPushBackend(HttpBackend):
    key = "push.webpush"
    verbose_name = "Web Push"
    address_key = "webpush"
    template_fields = PUSH_FIELDS
    ConfigForm = WebPushConfigForm
    category = "push"
    browser_subscriptions = True
    #: The push service's status: 404 and 410 say the subscription is gone.
    errors = {404: "dead", 410: "dead"}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.vapid = load_vapid_key(self.options["vapid_private_key"])
        self._headers: dict[str, dict[str, str]] = {}

    @property
    def public_key(self) -> str:
        """The ``applicationServerKey`` browsers subscribe with."""
        return application_server_key(self.vapid)

    @property
    def ttl(self) -> int:
        ttl = self.options.get("ttl")
        return DEFAULT_TTL if ttl is None else int(ttl)

    # --- addresses ------------------------------------------------------------------------------
    def address(self, recipient: Mapping[str, Any]) -> str | None:
        value = recipient.get(self.recipient_key() or "")
        if isinstance(value, Mapping):  # a subscription given as a dict to notify()
            try:
                return subscription_json(parse_subscription(value))
            except ValidationError:
                return json.dumps(value, separators=(",", ":"), default=str)
        return super().address(recipient)

    def validate_address(self, address: str) -> None:
        parse_subscription(address)

    # --- sending --------------------------------------------------------------------------------
    def open(self) -> None:
        if self.client is None:
            self._headers.clear()
        super().open()

    def vapid_headers(self, endpoint: str) -> dict[str, str]:
        """``Authorization: vapid t=…, k=…`` for the endpoint's push service, signed once per
        service and batch (the JWT is valid for 12 hours)."""
        aud = audience(endpoint)
        now = int(time.time())
        cached = self._headers.get(aud)
        if cached is None or int(cached["exp"]) < now + 600:
            exp = now + JWT_LIFETIME
            signed = self.vapid.sign({"aud": aud, "exp": exp, "sub": self.options["vapid_subject"]})
            cached = self._headers[aud] = {**signed, "exp": str(exp)}
        return {"Authorization": cached["Authorization"]}

    def payload(self, message: Outgoing) -> dict[str, Any]:
        extra = message.extra or {}
        data: dict[str, Any] = {"notifier_id": message.uuid, "event": message.event_key}
        if isinstance(extra.get("data"), Mapping):
            data |= extra["data"]
        payload: dict[str, Any] = {"title": message.subject, "body": message.text}
        url = message.link or extra.get("url") or data.get("url")
        if isinstance(url, str) and url:
            payload["url"] = url
        for name in ("icon", "badge", "tag"):
            if isinstance(extra.get(name), str) and extra[name]:
                payload[name] = extra[name]
        if message.image:
            payload["image"] = message.image
        if message.language:
            payload["lang"] = message.language
        payload["data"] = data
        return payload

    def request(self, message: Outgoing) -> HttpRequest:
        """The payload encrypted for the subscription (pywebpush: RFC 8291, aes128gcm), with
        the VAPID ``Authorization``, ``TTL`` and ``Urgency``."""
        try:
            subscription = parse_subscription(message.address)
        except ValidationError as error:
            raise PermanentError(f"{self.verbose_name}: {' '.join(error.messages)}") from None
        body = json.dumps(self.payload(message), separators=(",", ":"), default=str).encode()
        if len(body) > MAX_PAYLOAD:
            raise PermanentError(
                f"{self.verbose_name}: the payload is {len(body)} bytes, over the "
                f"{MAX_PAYLOAD}-byte limit of Web Push (shorten the subject, text or data)"
            )
        encrypted = WebPusher(subscription).encode(body, content_encoding="aes128gcm")["body"]
        headers = {
            **self.vapid_headers(subscription["endpoint"]),
            "Content-Encoding": "aes128gcm",
            "TTL": str(self.ttl),
        }
        if self.options.get("urgency"):
            headers["Urgency"] = self.options["urgency"]
        return HttpRequest(
            "POST", subscription["endpoint"], {"content": encrypted, "headers": headers}
        )

    def parse(self, response: httpx.Response, answer: Any, message: Outgoing) -> str:
        if response.is_success:
            return response.headers.get("Location", "")
        raise self.error(response, answer)

    def provider_code(self, response: httpx.Response, answer: Any) -> tuple[Any, str]:
        """A push service's status is its code (``errors``)."""
        return response.status_code, self.http_text(response)
