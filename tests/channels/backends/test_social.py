"""The social backends (X, Facebook Page, VK wall) against fakes of their APIs on 127.0.0.1.

- X API v2 ``POST /2/tweets``: the fake checks the OAuth 1.0a signature (recomputed here from
  the request it received), the JSON body, and answers ``201 {"data": {"id", "text"}}`` or
  problem JSON (``title``, ``detail``, ``type``, ``status``).
- Graph API ``POST /{version}/{page-id}/feed``: the form body (``message``, ``link``,
  ``access_token``, ``appsecret_proof``); ``{"id": "{page}_{post}"}`` or ``{"error": {…}}``.
- VK ``POST /method/wall.post``: the form body (``owner_id``, ``from_group``, ``message``,
  ``attachments``, ``access_token``, ``v``); always HTTP 200, ``{"response": {"post_id"}}`` or
  ``{"error": {"error_code", "error_msg"}}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import pytest
from django.utils import timezone

from campaigns.api import InvalidRecipient, notify
from campaigns.models import Message, MessageStatus
from channels.backends.base import ConfigurationError, PermanentError, TransientError
from channels.backends.social_facebook import FacebookPageBackend
from channels.backends.social_vk import VkWallBackend
from channels.backends.social_x import XBackend, oauth1_authorization, weighted_length
from channels.models import SECRET_MASK

from ... import factories
from ..conftest import dispatch_again
from ..fakes import Reply, json_reply

# --- X ------------------------------------------------------------------------------------------

X_KEYS = {
    "api_key": "xvz1evFS4wEEPTGEFPHBog",
    "api_secret": "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
    "access_token": "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
    "access_token_secret": "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
}


def x_problem(status: int, title: str, detail: str, **headers: str) -> Reply:
    body = {"title": title, "detail": detail, "type": "about:blank", "status": status}
    return Reply(status, body, {"Content-Type": "application/problem+json", **headers})


def pct(value: str) -> str:
    return quote(value, safe="-._~")


class FakeX:
    """X API v2 create-post. Verifies the OAuth 1.0a signature the way X does: from the
    request line, the Host header and the oauth_* parameters, with the JSON body unsigned."""

    def __init__(self):
        self.ids = (str(1445880548472328192 + n) for n in itertools.count(1))
        self.nonces: set[str] = set()
        self.posts: list[str] = []

    def signature_ok(self, request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("OAuth "):
            return False
        params = {}
        for item in header.removeprefix("OAuth ").split(", "):
            name, _, value = item.partition("=")
            params[unquote(name)] = unquote(value.strip('"'))
        signature = params.pop("oauth_signature", "")
        assert params["oauth_signature_method"] == "HMAC-SHA1"
        assert params["oauth_version"] == "1.0"
        assert abs(int(params["oauth_timestamp"]) - time.time()) < 300
        assert params["oauth_nonce"] not in self.nonces, "a nonce was reused"
        self.nonces.add(params["oauth_nonce"])
        if (params["oauth_consumer_key"], params["oauth_token"]) != (
            X_KEYS["api_key"],
            X_KEYS["access_token"],
        ):
            return False
        normalized = "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(params.items()))
        base = f"POST&{pct('http://' + request.headers['host'] + request.path)}&{pct(normalized)}"
        key = f"{pct(X_KEYS['api_secret'])}&{pct(X_KEYS['access_token_secret'])}"
        expected = base64.b64encode(hmac.new(key.encode(), base.encode(), "sha1").digest())
        return hmac.compare_digest(signature, expected.decode())

    def __call__(self, request) -> Reply:
        assert (request.method, request.path) == ("POST", "/2/tweets")
        if not self.signature_ok(request):
            return x_problem(401, "Unauthorized", "Unauthorized")
        assert request.headers["content-type"] == "application/json"
        body = request.json()
        assert set(body) == {"text"}, body
        if request.scripted:
            return json_reply(201, {"data": {"id": "0", "text": body["text"]}})
        if body["text"] in self.posts:
            return x_problem(
                403, "Forbidden", "You are not allowed to create a Tweet with duplicate content."
            )
        self.posts.append(body["text"])
        return json_reply(201, {"data": {"id": next(self.ids), "text": body["text"]}})


# --- Facebook -----------------------------------------------------------------------------------

PAGE_TOKEN = "EAAGm0PX4ZCpsBAPageTokenForTests0123456789"
APP_SECRET = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
PAGE, OTHER_PAGE, FORBIDDEN_PAGE = "104536221234567", "555000111222333", "403403403"


def graph_error(
    code: int, message: str, *, status: int = 400, subcode: int | None = None, **headers
) -> Reply:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEf123",
    }
    if subcode:
        error["error_subcode"] = subcode
    return json_reply(status, {"error": error}, **headers)


class FakeGraph:
    def __init__(self, version: str = "v24.0", app_secret: str = ""):
        self.version, self.app_secret = version, app_secret
        self.ids = itertools.count(1)
        self.posts: list[dict[str, str]] = []

    def __call__(self, request) -> Reply:
        assert request.method == "POST"
        prefix, _, rest = request.path.strip("/").partition("/")
        assert prefix == self.version, request.path
        page, _, edge = rest.partition("/")
        assert edge == "feed", request.path
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert "access_token" not in request.query  # never in the URL
        form = request.form()
        assert set(form) <= {"message", "link", "access_token", "appsecret_proof"}, form
        if form.get("access_token") != PAGE_TOKEN:
            return graph_error(190, "Invalid OAuth access token - Cannot parse access token")
        if self.app_secret:
            proof = hmac.new(self.app_secret.encode(), PAGE_TOKEN.encode(), hashlib.sha256)
            if form.get("appsecret_proof") != proof.hexdigest():
                return graph_error(100, "Invalid appsecret_proof provided in the API argument")
        if page == FORBIDDEN_PAGE:
            return graph_error(
                200, "(#200) The user hasn't authorized the application to perform this action"
            )
        if not form.get("message") and not form.get("link"):
            return graph_error(100, "(#100) Missing message or attachment")
        if request.scripted:
            return json_reply(200, {"id": f"{page}_0"})
        self.posts.append({"page": page, **form})
        return json_reply(200, {"id": f"{page}_{next(self.ids)}"})


# --- VK -----------------------------------------------------------------------------------------

VK_TOKEN = "vk1.a.CommunityTokenForTests_0123456789abcdef"
GROUP, CLOSED_GROUP = "-215734123", "-999"


def vk_error(code: int, message: str) -> Reply:
    # VK answers errors with HTTP 200, echoing the parameters (never the token).
    return json_reply(
        200,
        {
            "error": {
                "error_code": code,
                "error_msg": message,
                "request_params": [
                    {"key": "method", "value": "wall.post"},
                    {"key": "oauth", "value": "1"},
                ],
            }
        },
    )


class FakeVk:
    def __init__(self):
        self.ids = itertools.count(1)
        self.posts: list[dict[str, str]] = []

    def __call__(self, request) -> Reply:
        assert (request.method, request.path) == ("POST", "/method/wall.post")
        assert "access_token" not in request.query
        form = request.form()
        assert set(form) <= {
            "owner_id",
            "from_group",
            "message",
            "attachments",
            "access_token",
            "v",
        }, form
        assert form["v"] == "5.199"
        if form.get("access_token") != VK_TOKEN:
            return vk_error(5, "User authorization failed: invalid access_token (4).")
        if form["owner_id"] == CLOSED_GROUP:
            return vk_error(214, "Access to adding post denied: access to the wall is closed")
        if not form.get("message") and not form.get("attachments"):
            return vk_error(100, "One of the parameters specified was missing or invalid")
        if request.scripted:
            return json_reply(200, {"response": {"post_id": 0}})
        self.posts.append(form)
        return json_reply(200, {"response": {"post_id": 1000 + next(self.ids)}})


# --- channels -----------------------------------------------------------------------------------


@dataclass
class Provider:
    backend: str
    fake: type
    config: dict[str, Any]
    target_key: str
    target: str
    first_id: str

    def options(self, server, **extra) -> dict[str, Any]:
        return {"base_url": server.url, **self.config, **extra}


PROVIDERS = {
    "x": Provider("social.x", FakeX, {**X_KEYS, "account": "@shop"}, "x_account", "@shop", ""),
    "facebook": Provider(
        "social.facebook",
        FakeGraph,
        {"page_access_token": PAGE_TOKEN, "page_id": PAGE},
        "facebook_page",
        PAGE,
        f"{PAGE}_1",
    ),
    "vk": Provider(
        "social.vk",
        FakeVk,
        {"access_token": VK_TOKEN, "owner_id": GROUP},
        "vk_owner",
        GROUP,
        f"{GROUP}_1001",
    ),
}
PROVIDERS["x"].first_id = "1445880548472328193"


def social_channel(provider: Provider, server, *, key: str = "social", **config):
    """A channel, and a ``product-launch`` event with an English template on it."""
    channel = factories.ChannelFactory(
        key=key, name=key, backend=provider.backend, config=provider.options(server, **config)
    )
    event = factories.EventFactory(
        key="product-launch",
        variables=[{"name": "product", "label": "Product", "sample": "Rocket"}],
    )
    factories.TemplateFactory(
        event=event,
        channel=channel,
        subject="{{ product }}",
        text_body="{{ product }} is out today!",
    )
    return channel


def post_and_dispatch(channel, recipients=None, *, product: str = "Rocket", **options):
    from campaigns.outbox.dispatch import message_dispatch

    result = notify(
        "product-launch",
        [{}] if recipients is None else recipients,
        {"product": product},
        channels=[channel.key],
        **options,
    )
    ids = [m.pk for m in result.messages]
    message_dispatch(message_ids=ids)
    return list(Message.objects.filter(pk__in=ids).order_by("pk"))


@pytest.fixture(params=sorted(PROVIDERS))
def provider(request) -> Provider:
    return PROVIDERS[request.param]


def serve_fake(serve, fake):
    """The fake's server; ``server.fake`` is the fake, with what it accepted."""
    server = serve(fake)
    server.fake = fake
    return server


@pytest.fixture
def x_api(serve):
    return serve_fake(serve, FakeX())


@pytest.fixture
def graph(serve):
    return serve_fake(serve, FakeGraph())


@pytest.fixture
def vk(serve):
    return serve_fake(serve, FakeVk())


# --- end to end ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_notify_posts_once_to_the_configured_target_through_rq_worker(provider, serve, run_worker):
    server = serve(provider.fake())
    social_channel(provider, server)

    result = notify("product-launch", [{}], {"product": "Rocket"}, channels=["social"])
    assert [m.address for m in result.messages] == [provider.target]
    assert run_worker() == 1

    message = Message.objects.get()
    assert (message.status, message.provider_id) == (MessageStatus.SENT, provider.first_id)
    assert len(server.requests) == 1
    if provider.backend == "social.x":
        assert server.requests[0].json() == {"text": "Rocket is out today!"}
    elif provider.backend == "social.facebook":
        assert server.requests[0].path == f"/v24.0/{PAGE}/feed"
        assert server.requests[0].form() == {
            "message": "Rocket is out today!",
            "access_token": PAGE_TOKEN,
        }
    else:
        assert server.requests[0].form() == {
            "owner_id": GROUP,
            "from_group": "1",
            "message": "Rocket is out today!",
            "access_token": VK_TOKEN,
            "v": "5.199",
        }


def test_without_a_target_a_recipient_needs_its_key(provider, serve, db):
    server = serve(provider.fake())
    config = {
        k: v for k, v in provider.config.items() if k not in ("account", "page_id", "owner_id")
    }
    channel = factories.ChannelFactory(
        key="social", backend=provider.backend, config={"base_url": server.url, **config}
    )
    factories.TemplateFactory(
        event=factories.EventFactory(key="product-launch", variables=[]),
        channel=channel,
        text_body="Hello",
    )

    result = notify("product-launch", [{}, {provider.target_key: provider.target}], {})

    assert [m.address for m in result.messages] == [provider.target]
    assert [s.reason for s in result.skipped] == ["no address"]


def test_the_recipient_key_wins_over_the_default_page_and_is_configurable(graph, db):
    channel = social_channel(PROVIDERS["facebook"], graph, address_key="page")

    messages = post_and_dispatch(channel, [{"page": OTHER_PAGE}, {"facebook_page": "1"}, {}])

    assert [m.address for m in messages] == [OTHER_PAGE, PAGE, PAGE]
    assert [m.status for m in messages] == [MessageStatus.SENT] * 3
    assert [p["page"] for p in graph.fake.posts] == [OTHER_PAGE, PAGE, PAGE]
    assert (len(graph.requests), graph.connections) == (3, 1)  # one client per batch


def test_facebook_sends_the_link_and_the_appsecret_proof(serve, db):
    server = serve(FakeGraph(version="v23.0", app_secret=APP_SECRET))
    channel = social_channel(
        PROVIDERS["facebook"], server, app_secret=APP_SECRET, api_version="v23.0"
    )

    (message,) = post_and_dispatch(channel, extra={"link": "https://shop.example/rocket"})

    assert (message.status, message.provider_id) == (MessageStatus.SENT, f"{PAGE}_1")
    form = server.requests[0].form()
    assert form["link"] == "https://shop.example/rocket"
    assert (
        form["appsecret_proof"]
        == hmac.new(APP_SECRET.encode(), PAGE_TOKEN.encode(), hashlib.sha256).hexdigest()
    )


def test_vk_attachments_user_walls_and_post_as_user(vk, db):
    channel = social_channel(PROVIDERS["vk"], vk, post_as_user=True)

    group, user = post_and_dispatch(
        channel,
        [{}, {"vk_owner": "1234"}],
        extra={"attachments": ["photo-215734123_457239017"], "url": "https://shop.example/r"},
    )

    assert (group.provider_id, user.provider_id) == (f"{GROUP}_1001", "1234_1002")
    first, second = (request.form() for request in vk.requests)
    assert "from_group" not in first and "from_group" not in second
    assert first["attachments"] == "photo-215734123_457239017,https://shop.example/r"


def test_x_posts_with_the_link_and_refuses_another_account(x_api, db):
    channel = social_channel(PROVIDERS["x"], x_api)

    ok, other = post_and_dispatch(
        channel, [{"x_account": "@Shop"}, {"x_account": "rival"}], extra={"url": "https://s.ex/r"}
    )

    assert ok.status == MessageStatus.SENT
    assert x_api.requests[0].json() == {"text": "Rocket is out today! https://s.ex/r"}
    assert other.status == MessageStatus.FAILED
    assert other.last_error == (
        "PermanentError: X: this channel posts as @shop (the account of its access_token), "
        "not as rival"
    )
    assert len(x_api.requests) == 1


# --- error classes ------------------------------------------------------------------------------

ERRORS = [
    # provider, scripted answer, status, last_error contains, at least this many seconds later
    (
        "x",
        x_problem(429, "Too Many Requests", "Too Many Requests", **{"x-rate-limit-reset": "+900"}),
        "retrying",
        "TransientError: X 429: Too Many Requests",
        None,
    ),
    (
        "x",
        x_problem(503, "Service Unavailable", "Service Unavailable", **{"Retry-After": "120"}),
        "retrying",
        "TransientError: X 503: Service Unavailable",
        120,
    ),
    (
        "x",
        x_problem(403, "Forbidden", "You are not permitted to perform this action."),
        "failed",
        "PermanentError: X 403: Forbidden: You are not permitted to perform this action.",
        None,
    ),
    (
        "x",
        x_problem(401, "Unauthorized", "Unauthorized"),
        "failed",
        "PermanentError: X 401: Unauthorized (check the channel's api_key, api_secret, "
        "access_token and access_token_secret)",
        None,
    ),
    *[
        (
            "facebook",
            graph_error(
                code,
                "(#4) Application request limit reached",
                status=403,
                **{
                    "X-Business-Use-Case-Usage": json.dumps(
                        {
                            PAGE: [
                                {
                                    "type": "pages",
                                    "call_count": 100,
                                    "total_cputime": 10,
                                    "total_time": 12,
                                    "estimated_time_to_regain_access": 5,
                                }
                            ]
                        }
                    )
                },
            ),
            "retrying",
            f"TransientError: Facebook {code} OAuthException: (#4) Application request limit",
            300,
        )
        for code in (4, 17, 32, 613)
    ],
    (
        "facebook",
        graph_error(
            2, "An unexpected error has occurred. Please retry your request later.", status=500
        ),
        "retrying",
        "TransientError: Facebook 2 OAuthException: An unexpected error has occurred.",
        None,
    ),
    (
        "facebook",
        graph_error(1, "An unknown error occurred", status=500, subcode=99),
        "retrying",
        "TransientError: Facebook 1/99 OAuthException: An unknown error occurred "
        "(fbtrace_id AbCdEf123)",
        None,
    ),
    (
        "facebook",
        graph_error(190, "Error validating access token: Session has expired", subcode=463),
        "failed",
        "PermanentError: Facebook 190/463 OAuthException: Error validating access token: "
        "Session has expired (fbtrace_id AbCdEf123) (renew the channel's page_access_token)",
        None,
    ),
    (
        "facebook",
        graph_error(
            230, "(#230) Requires pages_manage_posts permission to manage the object", status=403
        ),
        "failed",
        "PermanentError: Facebook 230 OAuthException: (#230) Requires pages_manage_posts",
        None,
    ),
    *[
        ("vk", vk_error(code, text), "retrying", f"TransientError: VK {code}: {text}", None)
        for code, text in (
            (6, "Too many requests per second"),
            (9, "Flood control"),
            (10, "Internal server error"),
        )
    ],
    (
        "vk",
        vk_error(5, "User authorization failed: access_token has expired."),
        "failed",
        "PermanentError: VK 5: User authorization failed: access_token has expired. "
        "(renew the channel's access_token)",
        None,
    ),
    *[
        ("vk", vk_error(code, text), "failed", f"PermanentError: VK {code}: {text}", None)
        for code, text in (
            (15, "Access denied: no access to call this method"),
            (214, "Access to adding post denied: you can only add 50 posts a day"),
        )
    ],
]


@pytest.mark.parametrize(
    ("name", "reply", "status", "error", "wait"),
    ERRORS,
    ids=[f"{e[0]}-{e[1].status}-{e[3].split(':')[1].split()[1]}" for e in ERRORS],
)
def test_provider_errors_map_to_retry_or_failure(name, reply, status, error, wait, serve, db):
    provider = PROVIDERS[name]
    server = serve(provider.fake())
    channel = social_channel(provider, server)
    reset = None
    if "x-rate-limit-reset" in reply.headers:  # a Unix time: 900 s from now
        reset = int(time.time()) + 900
        reply = Reply(reply.status, reply.body, {**reply.headers, "x-rate-limit-reset": str(reset)})
    server.script = [reply]
    before = timezone.now()

    (message,) = post_and_dispatch(channel)

    assert (message.status, message.attempts) == (status, 1)
    assert error in message.last_error
    assert all(
        secret not in message.last_error for secret in (PAGE_TOKEN, VK_TOKEN, *X_KEYS.values())
    )
    if wait is not None:
        assert message.next_attempt_at >= before + dt.timedelta(seconds=wait)
    if reset is not None:  # waits until X's reset time
        assert message.next_attempt_at >= dt.datetime.fromtimestamp(reset - 1, tz=dt.UTC)


def test_vk_flood_control_is_retried_then_posted(vk, db):
    channel = social_channel(PROVIDERS["vk"], vk)
    vk.script = [vk_error(9, "Flood control")]

    (message,) = post_and_dispatch(channel)
    assert message.status == MessageStatus.RETRYING
    assert message.provider_id == ""

    (message,) = dispatch_again([message])
    assert (message.status, message.provider_id, message.attempts) == ("sent", f"{GROUP}_1001", 2)
    assert len(vk.fake.posts) == 1


def test_permanent_errors_from_the_fakes_own_rules(graph, vk, x_api, db):
    facebook = social_channel(PROVIDERS["facebook"], graph, key="fb")
    (forbidden,) = post_and_dispatch(facebook, [{"facebook_page": FORBIDDEN_PAGE}])
    assert forbidden.status == MessageStatus.FAILED
    assert forbidden.last_error.startswith(
        "PermanentError: Facebook 200 OAuthException: (#200) The user hasn't authorized"
    )

    vk_channel = social_channel(PROVIDERS["vk"], vk, key="vk")
    (closed,) = post_and_dispatch(vk_channel, [{"vk_owner": CLOSED_GROUP}])
    assert closed.last_error.startswith("PermanentError: VK 214: Access to adding post denied")

    x = social_channel(PROVIDERS["x"], x_api, key="x")
    first, duplicate = post_and_dispatch(x, [{}, {}])
    assert (first.status, duplicate.status) == (MessageStatus.SENT, MessageStatus.FAILED)
    assert duplicate.last_error == (
        "PermanentError: X 403: Forbidden: You are not allowed to create a Tweet with "
        "duplicate content."
    )


def test_wrong_credentials_name_the_setting(provider, serve):
    server = serve(provider.fake())
    wrong = {
        "social.x": {"access_token_secret": "not-the-secret"},
        "social.facebook": {"page_access_token": "EAAGwrong"},
        "social.vk": {"access_token": "vk1.a.wrong"},
    }[provider.backend]
    backend = registry_backend(provider.backend)(options=provider.options(server, **wrong))

    with pytest.raises(PermanentError) as failure:
        backend.send_test(provider.target, text="Hi")

    setting = {"social.x": "access_token_secret", "social.facebook": "page_access_token"}.get(
        provider.backend, "access_token"
    )
    assert setting in str(failure.value)
    assert all(value not in str(failure.value) for value in wrong.values())


def registry_backend(key: str):
    from channels.registry import backend_class

    return backend_class(key)


# --- X's limits and signature -------------------------------------------------------------------


def test_x_refuses_a_text_over_its_limit_before_any_request(x_api, db):
    channel = social_channel(PROVIDERS["x"], x_api)

    # The template adds " is out today!" (14): 266 + 14 = 280 fits; 2 * 133 + 1 + 14 = 281.
    (fits,) = post_and_dispatch(channel, product="a" * 266)
    (cjk,) = post_and_dispatch(channel, product="日" * 133 + "a")

    assert fits.status == MessageStatus.SENT
    assert cjk.status == MessageStatus.FAILED
    assert cjk.last_error == (
        "PermanentError: X: the post is 281 characters as X counts them; the limit is 280 "
        "(set max_length if this account may post longer)"
    )
    assert len(x_api.requests) == 1


def test_x_max_length_and_links_count_23(x_api):
    backend = XBackend(options={"base_url": x_api.url, **X_KEYS, "max_length": 1000})
    assert backend.send_test("@shop", text="b" * 1000)
    with pytest.raises(
        PermanentError, match="is 1001 characters as X counts them; the limit is 1000"
    ):
        backend.send_test("@shop", text="c" * 1001)
    assert len(x_api.requests) == 1
    assert weighted_length("see https://example.com/a-very/long/path?with=query ok") == 4 + 23 + 3
    assert weighted_length("café 👍🏽") == 5 + 2
    with pytest.raises(PermanentError, match="nothing to post"):
        backend.send_test("@shop", text="   ")


def test_x_signature_matches_xs_documented_example():
    # developer.x.com, "Creating a signature": the documented inputs and signature.
    header = oauth1_authorization(
        "POST",
        "https://api.twitter.com/1.1/statuses/update.json?include_entities=true",
        consumer_key=X_KEYS["api_key"],
        consumer_secret=X_KEYS["api_secret"],
        token=X_KEYS["access_token"],
        token_secret=X_KEYS["access_token_secret"],
        form={"status": "Hello Ladies + Gentlemen, a signed OAuth request!"},
        nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
        timestamp=1318622958,
    )
    assert header.startswith("OAuth ")
    params = dict(
        (unquote(name), unquote(value.strip('"')))
        for name, _, value in (item.partition("=") for item in header[6:].split(", "))
    )
    assert params == {
        "oauth_consumer_key": "xvz1evFS4wEEPTGEFPHBog",
        "oauth_nonce": "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
        "oauth_signature": "hCtSmYh+iHYCEqBWrE7C7hYmtUk=",
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": "1318622958",
        "oauth_token": "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
        "oauth_version": "1.0",
    }


# --- send_test, addresses, configuration --------------------------------------------------------


def test_send_test(provider, serve):
    server = serve(provider.fake())
    backend = registry_backend(provider.backend)(options=provider.options(server))

    assert backend.send_test(provider.target, subject="Only a subject") == provider.first_id
    assert len(server.requests) == 1
    with pytest.raises(Exception, match="is not"):
        backend.send_test("not an account!")
    assert len(server.requests) == 1


def test_a_timeout_is_transient(graph):
    backend = FacebookPageBackend(
        options={"base_url": graph.url, "page_access_token": PAGE_TOKEN, "timeout": 0.3}
    )
    graph.script = [Reply(200, {"id": f"{PAGE}_9"}, delay=1.5)]
    with pytest.raises(TransientError, match=r"Facebook Page: no answer within 0.3s"):
        backend.send_test(PAGE, text="Hi")


def test_malformed_targets_are_refused_at_notify(provider, serve, db):
    server = serve(provider.fake())
    social_channel(provider, server)
    with pytest.raises(InvalidRecipient, match="is not"):
        notify("product-launch", {provider.target_key: "me and you"}, {"product": "R"})


@pytest.mark.parametrize(
    ("backend", "options", "problem"),
    [
        (XBackend, {**X_KEYS, "api_secret": ""}, "api_secret: This field is required."),
        (XBackend, {**X_KEYS, "account": "not a handle"}, "account: 'not a handle' is not an X"),
        (XBackend, {**X_KEYS, "max_length": 0}, "max_length"),
        (FacebookPageBackend, {}, "page_access_token: This field is required."),
        (
            FacebookPageBackend,
            {"page_access_token": PAGE_TOKEN, "page_id": "shop-page"},
            "page_id: 'shop-page' is not a Facebook Page id",
        ),
        (
            FacebookPageBackend,
            {"page_access_token": PAGE_TOKEN, "api_version": "24"},
            "api_version: a Graph API version such as v24.0",
        ),
        (
            VkWallBackend,
            {"access_token": VK_TOKEN, "owner_id": "club123"},
            "owner_id: 'club123' is not a VK wall owner id",
        ),
        (VkWallBackend, {"access_token": VK_TOKEN, "api_version": "v5"}, "api_version"),
        (VkWallBackend, {"access_token": VK_TOKEN, "wall": "-1"}, "unknown option(s) 'wall'"),
    ],
)
def test_options_are_validated(backend, options, problem):
    with pytest.raises(ConfigurationError) as failure:
        backend(options=options)
    assert problem in str(failure.value)


def test_secrets_are_marked_and_masked(db):
    assert XBackend.secret_fields() == ("api_secret", "access_token", "access_token_secret")
    assert FacebookPageBackend.secret_fields() == ("page_access_token", "app_secret")
    assert VkWallBackend.secret_fields() == ("access_token",)
    channel = factories.ChannelFactory(
        key="fb",
        backend="social.facebook",
        config={"page_access_token": PAGE_TOKEN, "app_secret": APP_SECRET, "page_id": PAGE},
    )
    assert channel.masked_config() == {
        "page_access_token": SECRET_MASK,
        "app_secret": SECRET_MASK,
        "page_id": PAGE,
    }
    channel.full_clean()


@pytest.mark.django_db(transaction=True)
def test_a_campaign_posts_once_to_the_page(graph, run_worker, settings):
    from campaigns.broadcast.dry_run import campaign_dry_run
    from campaigns.broadcast.fanout import campaign_schedule
    from campaigns.models import Audience, Campaign, Contact

    settings.NOTIFIER = {**settings.NOTIFIER, "CAMPAIGN_CHUNK": 7}
    channel = social_channel(PROVIDERS["facebook"], graph)
    audience = Audience.objects.create(name="Customers", kind="contacts")
    Contact.objects.bulk_create(
        [Contact(audience=audience, email=f"c{i}@example.com") for i in range(20)]
    )
    campaign = Campaign.objects.create(
        name="Launch",
        event=channel.templates.get().event,
        audience=audience,
        context={"product": "Rocket"},
    )
    campaign.channels.set([channel])

    dry = campaign_dry_run(campaign)
    assert dry.per_channel() == {"social": 1}
    assert dry.skipped[("social", "duplicate address")] == 19
    campaign_schedule(campaign)
    run_worker()

    (message,) = Message.objects.filter(campaign=campaign)
    assert (message.status, message.address) == (MessageStatus.SENT, PAGE)
    assert [post["message"] for post in graph.fake.posts] == ["Rocket is out today!"]
