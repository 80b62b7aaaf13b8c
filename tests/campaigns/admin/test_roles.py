"""Operator roles: the Marketing and Support groups made by a migration, checked per view."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from campaigns.api import notify
from campaigns.models import Message, OptOut
from channels.models import SECRET_MASK, ChannelConfig
from tests import factories


@pytest.fixture
def data(db):
    channel = ChannelConfig.objects.create(
        key="smtp",
        name="SMTP",
        backend="channels.backends.email.EmailBackend",
        config={"host": "mail.example.com", "password": "S3cret-Value"},
    )
    memory = factories.memory_channel()
    template = factories.TemplateFactory(channel=memory, event__key="order-shipped")
    (message,) = notify("order-shipped", {"email": "a@example.com"}, {"order_id": "1"}).messages
    Message.objects.filter(pk=message.pk).update(status="failed")
    return {"channel": channel, "template": template, "message": message}


def login(client, django_user_model, role: str):
    user = django_user_model.objects.create_user(role.lower(), f"{role}@x.io", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


def test_marketing_edits_templates_sees_channels_masked_and_nothing_else(
    client, django_user_model, data
):
    login(client, django_user_model, "Marketing")
    template, channel = data["template"], data["channel"]
    assert client.get(f"/admin/campaigns/template/{template.pk}/change/").status_code == 200
    assert client.get(f"/admin/campaigns/event/{template.event_id}/change/").status_code == 200
    page = client.get(f"/admin/channels/channelconfig/{channel.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "S3cret-Value" not in html and SECRET_MASK in html
    response = client.post(
        f"/admin/channels/channelconfig/{channel.pk}/change/",
        {
            "key": "smtp",
            "name": "Hacked",
            "backend": channel.backend,
            "config": '{"host": "evil.example.com"}',
        },
    )
    assert response.status_code == 403
    channel.refresh_from_db()
    assert (channel.name, channel.config["host"]) == ("SMTP", "mail.example.com")
    assert client.get("/admin/campaigns/message/").status_code == 403
    client.post(
        "/admin/campaigns/message/",
        {"action": "requeue_selected", "_selected_action": [data["message"].pk], "confirm": "yes"},
    )
    assert Message.objects.get(pk=data["message"].pk).status == "failed"
    assert client.get("/admin/campaigns/optout/").status_code == 403


def test_support_resends_and_manages_opt_outs_but_cannot_edit_templates(
    client, django_user_model, data
):
    login(client, django_user_model, "Support")
    template = data["template"]
    response = client.post(
        f"/admin/campaigns/template/{template.pk}/change/", {"subject": "Changed by support"}
    )
    assert response.status_code == 403
    template.refresh_from_db()
    assert template.subject != "Changed by support"
    assert client.get("/admin/campaigns/message/").status_code == 200
    client.post(
        "/admin/campaigns/message/",
        {"action": "requeue_selected", "_selected_action": [data["message"].pk], "confirm": "yes"},
    )
    assert Message.objects.get(pk=data["message"].pk).status == "queued"
    response = client.post("/admin/campaigns/optout/add/", {"address": "Gone@Example.com"})
    assert response.status_code == 302
    assert OptOut.objects.filter(address="gone@example.com").exists()
    assert (
        client.get(f"/admin/channels/channelconfig/{data['channel'].pk}/change/").status_code == 403
    )


def test_the_roles_hold_the_send_test_permission(db):
    for name in ("Marketing", "Support"):
        codenames = set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))
        assert "send_test" in codenames


def test_support_reads_a_message_it_may_resend(client, django_user_model, data):
    message = data["message"]
    login(client, django_user_model, "Support")
    response = client.get(f"/admin/campaigns/message/{message.pk}/change/")
    assert response.status_code == 200
    assert message.address in response.content.decode()
