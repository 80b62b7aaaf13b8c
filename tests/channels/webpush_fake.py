"""A Web Push service on 127.0.0.1 (with ``FakeServer``): what a browser vendor's push service
does with an application server's POST to a subscription's endpoint.

It checks what RFC 8030 / 8291 / 8292 ask of the request — ``Authorization: vapid t=<JWT>,
k=<public key>`` with an ES256 signature that verifies against ``k``, ``aud`` the endpoint's
origin, ``exp`` in the future and within 24 hours, ``sub`` a mailto: or https: URI; the key
the subscription was made with (``applicationServerKey``); ``Content-Encoding: aes128gcm``;
a ``TTL``; an ``Urgency`` if any; at most 4096 bytes — then decrypts the body with the
subscriber's private key and auth secret, as the browser would, and keeps the plaintext.
It answers 201 with a ``Location``; 404 for an endpoint it never issued, 410 for one whose
subscriber unsubscribed. Other answers (429 with ``Retry-After``, 500, 413 …) are given by
the server's ``script``.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.channels.fakes import Reply, Request, json_reply

URGENCIES = {"very-low", "low", "normal", "high"}
AUTH = re.compile(r"^vapid\s+(?P<params>.+)$", re.IGNORECASE)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def public_point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def vapid_pem() -> tuple[str, str]:
    """A fresh VAPID key: its PEM, and its public key as browsers take it."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return pem, b64url(public)


#: The VAPID key of the tests' Web Push channels.
PRIVATE_PEM, PUBLIC_KEY = vapid_pem()


@dataclass
class Subscriber:
    """A browser's side of one subscription: its P-256 key pair and auth secret."""

    name: str
    endpoint: str
    application_server_key: str | None  # the VAPID public key it subscribed with
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))
    unsubscribed: bool = False

    @property
    def subscription(self) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives the page."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(public_point(self.key)), "auth": b64url(self.auth)},
        }

    @property
    def json(self) -> str:
        return json.dumps(self.subscription)

    def decrypt(self, body: bytes) -> bytes:
        return http_ece.decrypt(
            body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )


@dataclass
class Delivery:
    subscriber: str
    payload: Any  # the decrypted body, parsed as JSON
    ttl: int
    urgency: str
    claims: dict[str, Any]
    vapid_key: str


def verify_vapid(header: str, origin: str) -> tuple[dict[str, Any], str]:
    """The JWT's claims and ``k``, or ``ValueError`` saying what is wrong (RFC 8292)."""
    match = AUTH.match(header or "")
    if not match:
        raise ValueError("no 'Authorization: vapid t=…, k=…' header")
    params = dict(
        part.strip().split("=", 1) for part in match.group("params").split(",") if "=" in part
    )
    token, key = params.get("t", ""), params.get("k", "")
    if not token or not key:
        raise ValueError("the vapid authorization lacks t or k")
    try:
        signing_input, _, signature = token.rpartition(".")
        head, claims_part = signing_input.split(".")
        header_json = json.loads(unb64url(head))
        claims = json.loads(unb64url(claims_part))
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        raw = unb64url(signature)
    except ValueError as error:
        raise ValueError(f"malformed JWT or key ({error})") from None
    if header_json.get("alg") != "ES256" or len(raw) != 64:
        raise ValueError(f"the JWT is not ES256 ({header_json})")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("the JWT signature does not verify with k") from None
    if claims.get("aud") != origin:
        raise ValueError(f"aud {claims.get('aud')!r} is not this push service ({origin})")
    now = time.time()
    if not isinstance(claims.get("exp"), int) or not now < claims["exp"] <= now + 86400:
        raise ValueError(f"exp {claims.get('exp')!r} is not within the next 24 hours")
    if not re.match(r"^(mailto:[^@\s]+@[^@\s]+|https://\S+)$", str(claims.get("sub", ""))):
        raise ValueError(f"sub {claims.get('sub')!r} is neither mailto: nor https:")
    return claims, key


class FakePushService:
    """The handler of a ``FakeServer``; ``subscribe()`` makes a subscriber on it."""

    def __init__(self):
        self.url = ""  # set by the fixture once the server runs
        self.subscribers: dict[str, Subscriber] = {}
        self.delivered: list[Delivery] = []
        self.ids = (f"msg-{n:04d}" for n in itertools.count(1))
        self.lock = threading.Lock()

    def subscribe(self, name: str, *, application_server_key: str | None) -> Subscriber:
        path = f"/wpush/v2/{name}-{b64url(os.urandom(12))}"
        subscriber = Subscriber(name, self.url + path, application_server_key)
        self.subscribers[path] = subscriber
        return subscriber

    def payloads(self, name: str | None = None) -> list[Any]:
        return [d.payload for d in self.delivered if name is None or d.subscriber == name]

    def __call__(self, request: Request) -> Reply:
        origin = f"http://{request.headers['host']}"
        subscriber = self.subscribers.get(request.path)
        if request.method != "POST":
            return Reply(405, "POST a push message to the subscription's endpoint")
        if subscriber is None:
            return json_reply(404, {"code": 404, "errno": 102, "message": "Not Found"})
        if subscriber.unsubscribed:
            return json_reply(
                410, {"code": 410, "errno": 106, "message": "Request did not validate: gone"}
            )
        try:
            claims, key = verify_vapid(request.headers.get("authorization", ""), origin)
        except ValueError as error:
            return json_reply(401, {"code": 401, "errno": 109, "message": str(error)})
        if subscriber.application_server_key not in (None, key):
            return json_reply(
                403,
                {"code": 403, "errno": 109, "message": "VAPID public key mismatch"},
            )
        if request.headers.get("content-encoding") != "aes128gcm":
            return Reply(400, f"Content-Encoding {request.headers.get('content-encoding')!r}")
        ttl = request.headers.get("ttl", "")
        if not ttl.isdigit():
            return Reply(400, f"missing or invalid TTL header ({ttl!r})")
        urgency = request.headers.get("urgency", "normal")
        if urgency not in URGENCIES:
            return Reply(400, f"invalid Urgency {urgency!r}")
        if len(request.body) > 4096:
            return Reply(413, "Payload Too Large: body is over 4096 bytes")
        try:
            plaintext = subscriber.decrypt(request.body)
        except Exception as error:
            return Reply(400, f"cannot decrypt the payload ({type(error).__name__}: {error})")
        payload = json.loads(plaintext)
        if request.scripted:  # a scripted answer follows: the message is not delivered
            return Reply(201)
        with self.lock:
            self.delivered.append(
                Delivery(subscriber.name, payload, int(ttl), urgency, claims, key)
            )
            message_id = next(self.ids)
        return Reply(201, b"", {"Location": f"{origin}/m/{message_id}"})
