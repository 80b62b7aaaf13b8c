"""Every endpoint that reads JSON someone outside sent answers a malformed body — 50,000
levels deep, not UTF-8, of the wrong type — with a 400 naming the problem, and changes
nothing (admin forms show the same as a form error)."""

from __future__ import annotations

import base64
import json

import pytest
from anymail import urls as anymail_urls
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from campaigns.models import ApiToken, Campaign, ChannelAddress, Event, Message, MessageStatus
from channels.models import ChannelConfig
from tests import factories
from tests.channels.webpush_fake import PRIVATE_PEM

pytestmark = pytest.mark.django_db

DEEP = b"[" * 50_000 + b"]" * 50_000
DEEP_INSIDE = b'{"ids": ' + DEEP + b', "endpoint": "https://push.example.com/x"}'
NOT_UTF8 = b'{"ids": ["\xff\xfe"], "endpoint": "https://push.example.com/\xc3"}'
# (body, what the error names)
MALFORMED = [
    (DEEP, "nested deeper than 32 levels"),
    (DEEP_INSIDE, "nested deeper than 32 levels"),
    (NOT_UTF8, "is not UTF-8"),
    (b"[]", "must be an object in JSON, not an array"),
    (b'"ids"', "must be an object in JSON, not a string"),
    (b"1", "must be an object in JSON, not a number"),
    (b"null", "must be an object in JSON, not null"),
    (b'{"ids": [NaN]}', "is not valid JSON"),
    (b"{", "is not valid JSON"),
]


@pytest.fixture
def ann(django_user_model):
    return django_user_model.objects.create_user("ann", "ann@example.com", "pw-ann-123")


def assert_refused(response, problem: str) -> None:
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert problem in error, error


IDS = ["deep", "deep-inside", "not-utf8", "array", "string", "number", "null", "nan", "cut"]


@pytest.mark.parametrize(("body", "problem"), MALFORMED, ids=IDS)
def test_the_inbox_api_refuses_malformed_json(ann, body, problem):
    inbox, _ = ChannelConfig.objects.update_or_create(
        key="inbox", defaults={"name": "Inbox", "backend": "channels.backends.inbox.InboxBackend"}
    )
    item = Message.objects.create(
        event=factories.EventFactory(key="news"),
        channel=inbox,
        address=str(ann.pk),
        user=ann,
        status=MessageStatus.SENT,
    )
    _, raw = ApiToken.generate(user=ann, name="phone")
    by_token = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    by_session = Client()
    by_session.force_login(ann)
    for client in (by_token, by_session):
        response = client.post("/api/inbox/seen/", body, content_type="application/json")
        assert_refused(response, problem)
    item.refresh_from_db()
    assert item.seen_at is None


@pytest.mark.parametrize(("body", "problem"), MALFORMED, ids=IDS)
def test_the_web_push_endpoints_refuse_malformed_json(ann, body, problem):
    ChannelConfig.objects.create(
        key="webpush",
        name="Web Push",
        backend="channels.backends.webpush.WebPushBackend",
        config={"vapid_private_key": PRIVATE_PEM, "vapid_subject": "mailto:ops@example.com"},
    )
    address = ChannelAddress.objects.create(
        user=ann, kind="webpush", address='{"endpoint":"https://push.example.com/x"}'
    )
    client = Client()
    client.force_login(ann)
    for path in ("/webpush/subscription/", "/webpush/unsubscribe/"):
        response = client.post(path, body, content_type="application/json")
        assert_refused(response, problem)
    assert list(ChannelAddress.objects.values_list("pk", "is_active")) == [(address.pk, True)]


def tracking_paths() -> list[str]:
    names = [p.name for p in anymail_urls.urlpatterns if p.name.endswith("_tracking_webhook")]
    assert len(names) >= 10
    return [f"/anymail/{p.pattern}" for p in anymail_urls.urlpatterns if p.name in names]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (DEEP, "nested deeper than 32 levels"),
        (NOT_UTF8, "is not UTF-8"),
        (b'"events"', "must be an object or an array in JSON, not a string"),
        (b"{", "is not valid JSON"),
    ],
    ids=["deep", "not-utf8", "string", "cut"],
)
def test_every_esp_tracking_webhook_refuses_malformed_json(body, problem, settings):
    # With a secret set, so the webhooks are on (without one they all answer 403).
    settings.ANYMAIL = {"WEBHOOK_SECRET": ["esp:hook-secret"]}
    client = Client(raise_request_exception=False)
    for path in tracking_paths():
        response = client.post(path, body, content_type="application/json")
        assert response.status_code == 400, (path, response.status_code)
        assert problem in response.content.decode(), (path, response.content[:200])
    # Mandrill posts a form whose field holds the JSON.
    response = client.post("/anymail/mandrill/tracking/", {"mandrill_events": DEEP.decode()})
    assert response.status_code == 400
    assert "nested deeper than 32 levels" in response.content.decode()


#: The ESPs whose tracking webhooks check HTTP basic auth only (the others need a signing key
#: of their own configured first).
BASIC_AUTH_ESPS = ("brevo", "mailjet", "mailtrap", "postmark", "sendgrid", "sparkpost")


@pytest.mark.parametrize("body", [b"[1, 2]", b'[{"event": {"not": "a name"}}]', b'"x"'])
def test_an_authenticated_payload_not_in_the_esps_shape_gets_400(body, settings, caplog):
    """JSON that passed the ESP's basic auth but is not its tracking format is a bad request
    (the same body posted again would fail again), not a server error."""
    settings.ANYMAIL = {"WEBHOOK_SECRET": ["esp:hook-secret"]}
    client = Client(raise_request_exception=False)
    auth = "Basic " + base64.b64encode(b"esp:hook-secret").decode()
    answers = {
        esp: client.post(
            f"/anymail/{esp}/tracking/", body, content_type="application/json",
            HTTP_AUTHORIZATION=auth,
        ).status_code
        for esp in BASIC_AUTH_ESPS
    }  # fmt: skip
    assert answers == dict.fromkeys(BASIC_AUTH_ESPS, 400), answers
    assert ChannelAddress.objects.count() == 0


@pytest.fixture
def marketing(django_user_model):
    mia = django_user_model.objects.create_user("mia", "mia@x.io", "pw", is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    client = Client()
    client.force_login(mia)
    return client


def test_admin_json_fields_show_malformed_json_as_form_errors(marketing):
    template = factories.TemplateFactory(channel=factories.memory_channel())
    event = template.event
    deep = DEEP.decode()

    preview = {"event": event.pk, "subject": "{{ order_id }}", "text_body": "", "html_body": ""}
    for raw, problem in ((deep, "nested deeper than 32 levels"), ("[1]", "must be an object")):
        response = marketing.post(
            "/admin/campaigns/template/preview/", {**preview, "preview_context": raw}
        )
        assert response.status_code == 200
        assert "sample values" in response.content.decode()
        assert problem in response.content.decode()

    form = {
        "key": event.key,
        "name": event.name,
        "variables": deep,
        "trigger": event.trigger,
        "unsubscribe_scope": event.unsubscribe_scope,
        "is_active": "on",
        "windows-TOTAL_FORMS": "0",
        "windows-INITIAL_FORMS": "0",
        "templates-TOTAL_FORMS": "0",
        "templates-INITIAL_FORMS": "0",
        "escalation_steps-TOTAL_FORMS": "0",
        "escalation_steps-INITIAL_FORMS": "0",
    }
    response = marketing.post(f"/admin/campaigns/event/{event.pk}/change/", form)
    assert response.status_code == 200, response.status_code
    assert "nested deeper than 32 levels" in response.content.decode()
    assert Event.objects.get(pk=event.pk).variables == event.variables
    window = {
        "windows-TOTAL_FORMS": "1",
        "windows-0-weekdays": deep,
        "windows-0-start_time": "09:00",
        "windows-0-end_time": "17:00",
    }
    variables = json.dumps(event.variables)
    response = marketing.post(
        f"/admin/campaigns/event/{event.pk}/change/", {**form, **window, "variables": variables}
    )
    assert response.status_code == 200, response.status_code
    assert "nested deeper than 32 levels" in response.content.decode()
    assert not event.windows.exists()

    # A campaign's values are typed field by field: a JSON body posted instead is not read,
    # and the value it lacks is named.
    response = marketing.post(
        "/admin/campaigns/campaign/add/", {"name": "Spring", "event": event.pk, "context": deep}
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["context"] == ["Order: required"]
    assert not Campaign.objects.exists()


def test_json_in_the_answers_stays_json(ann):
    """(The answers themselves: the error is JSON a client can read.)"""
    client = Client()
    client.force_login(ann)
    response = client.post("/api/inbox/seen/", b"[", content_type="application/json")
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["error"].startswith("the body is not valid JSON")


def test_an_imported_json_cell_nested_too_deep_is_a_row_error(marketing):
    """Events move between sites as CSV; their variables are a JSON cell."""
    deep = DEEP.decode()
    csv = f'key,name,variables\nnews,News,"{deep}"\n'
    data = {
        "import_file": SimpleUploadedFile("events.csv", csv.encode(), content_type="text/csv"),
        "format": "0",
        "resource": "0",
    }
    response = marketing.post("/admin/campaigns/event/import/", data)
    assert response.status_code == 200
    assert "the cell is nested deeper than 32 levels" in response.content.decode()
    assert not Event.objects.filter(key="news").exists()
