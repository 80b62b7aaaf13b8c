"""The worked example of docs/adding-a-channel.md, installed exactly as the doc says (its
module written to ``myproject/sms.py`` on sys.path, and its one line of settings), sending to
a fake of its provider."""

from __future__ import annotations

import re
import sys

import pytest
from django.conf import settings
from django.test import override_settings

from campaigns.models import ChannelAddress, MessageStatus
from channels.declarations import sync_channels
from channels.models import ChannelConfig

from ... import factories
from ...conftest import ROOT
from ..conftest import notify_and_dispatch
from ..fakes import json_reply

DOC = (ROOT / "docs" / "adding-a-channel.md").read_text()
EXAMPLE = ROOT / "tests" / "channels" / "example_backend.py"


def provider(request):
    if request.headers.get("authorization") != "Bearer tok-123":
        return json_reply(401, {"error": "unauthorized", "message": "bad token"})
    assert (request.method, request.path) == ("POST", "/v1/messages")
    body = request.json()
    assert set(body) == {"to", "from", "text"} and body["from"] == "Shop"
    if body["to"] == "+15550000000":
        return json_reply(404, {"error": "unknown_number", "message": "+15550000000 is unknown"})
    return json_reply(201, {"id": f"msg_{body['to'][-4:]}"})


@pytest.fixture
def myproject(tmp_path):
    """The doc's module, installed as myproject/sms.py."""
    (tmp_path / "myproject").mkdir()
    (tmp_path / "myproject" / "__init__.py").write_text("")
    (tmp_path / "myproject" / "sms.py").write_text(EXAMPLE.read_text())
    sys.path.insert(0, str(tmp_path))
    yield
    sys.path.remove(str(tmp_path))
    for name in ("myproject", "myproject.sms"):
        sys.modules.pop(name, None)


def test_the_doc_shows_the_example_module_verbatim():
    assert f"```python\n# myproject/sms.py\n{EXAMPLE.read_text()}```" in DOC


def test_the_example_installs_with_one_line_of_settings_and_sends(myproject, serve, db):
    server = serve(provider)
    (setting,) = re.findall(r'NOTIFIER\["CHANNELS"\]\["sms"\] = (\{.*?\n\})', DOC, re.DOTALL)
    declared = eval(setting, {"env": {"EXAMPLE_SMS_TOKEN": "tok-123"}.get})  # noqa: S307
    declared["OPTIONS"]["base_url"] = server.url  # the test's provider instead of the real one
    with override_settings(NOTIFIER={**settings.NOTIFIER, "CHANNELS": {"sms": declared}}):
        sync_channels()
    channel = ChannelConfig.objects.get(key="sms")
    assert channel.backend == "myproject.sms.ExampleSmsBackend"
    event = factories.EventFactory(key="order-shipped", variables=[])
    factories.TemplateFactory(event=event, channel=channel, text_body="Order {{ order_id }}")

    sent, dead = notify_and_dispatch(
        channel, [{"phone": "+4915112345678"}, {"phone": "+15550000000"}]
    )

    assert (sent.status, sent.provider_id) == (MessageStatus.SENT, "msg_5678")
    assert server.requests[0].json()["text"] == "Order A-7"
    assert (dead.status, dead.last_error) == (
        MessageStatus.FAILED,
        "AddressRejected: Example SMS: +15550000000 is unknown",
    )
    assert not ChannelAddress.objects.get(kind="phone", address="+15550000000").is_active
    assert channel.masked_config()["token"] != "tok-123"
    assert server.connections == 1
