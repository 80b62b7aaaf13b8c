"""The preference centre: kinds of channel people know (never the operators' channels),
switches for everything, marketing, each kind and each event on each kind; opt-outs kept as
a consent record (revoked, not deleted); the signed link that opens it without a login."""

from __future__ import annotations

import pytest
from django.core import signing
from django.test import Client

from campaigns.api import notify
from campaigns.models import ChannelAddress, OptOut
from campaigns.recipients.links import preferences_url
from campaigns.recipients.preferences import preferences_read, preferences_subject_for_user
from channels.models import ChannelConfig
from tests import factories

pytestmark = pytest.mark.django_db

PHONE = "+4915112345678"


@pytest.fixture
def setup(django_user_model):
    ChannelConfig.objects.update(is_active=False)  # only this test's channels count
    ChannelConfig.objects.filter(key="email").delete()
    email = factories.ChannelFactory(
        key="email", name="Email", backend="channels.backends.email.EmailBackend"
    )
    relay = factories.ChannelFactory(
        key="relay", name="SMTP relay", backend="channels.backends.email.EmailBackend"
    )
    console = factories.ChannelFactory(
        key="console", name="Console", backend="channels.backends.console.ConsoleBackend"
    )
    sms = factories.sms_channel()
    news = factories.EventFactory(key="newsletter", name="Newsletter", user_configurable=True)
    tips = factories.EventFactory(key="tips", name="Tips", user_configurable=True, marketing=True)
    reset = factories.EventFactory(
        key="account-reset",
        name="Password reset",
        mandatory=True,
        mandatory_reason="We send it only when you ask for a new password.",
    )
    hidden = factories.EventFactory(key="internal", name="Internal")
    for event in (news, tips, reset, hidden):
        for channel in (email, relay, console, sms):
            factories.TemplateFactory(event=event, channel=channel, text_body="Hi {{ order_id }}")
    user = django_user_model.objects.create_user("ann", "ann@example.com", "pw-ann-123")
    return {
        "email": email,
        "relay": relay,
        "console": console,
        "sms": sms,
        "news": news,
        "tips": tips,
        "reset": reset,
        "hidden": hidden,
        "user": user,
    }


def logged_in(user, csrf=False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def switches(response) -> dict[str, tuple[bool, bool]]:
    """{switch name: (on, editable)} of the page."""
    page = response.context["page"]
    return {s.name: (s.on, s.editable) for s in page.switches()}


def form_of(response, **changes: bool) -> dict[str, str]:
    """What the page's form posts (its editable boxes that are checked), with changes."""
    page = response.context["page"]
    wanted = {s.name: s.on for s in page.switches() if s.editable}
    wanted.update({name.replace("_", "-"): on for name, on in changes.items()})
    return {name: "on" for name, on in wanted.items() if on}


def sent_on(setup, user, event="newsletter") -> list[str]:
    result = notify(event, user, {"order_id": "1"})
    return sorted(m.channel.key for m in result.messages)


def test_people_choose_kinds_of_channel_never_the_operators_channels(setup):
    client = logged_in(setup["user"])
    response = client.get("/preferences/")
    assert response.status_code == 200
    html = response.content.decode()
    # Two email channels are one "Email"; the console (an operators' channel) is not shown;
    # no phone: no SMS. Internal events are not shown.
    assert [kind.kind for kind, _ in response.context["page"].kinds] == ["email"]
    assert "SMTP relay" not in html and "Console" not in html and "Internal" not in html
    assert switches(response)[f"pref-{setup['news'].pk}-email"] == (True, True)
    ChannelAddress.objects.create(user=setup["user"], kind="phone", address=PHONE)
    response = client.get("/preferences/")
    assert [kind.kind for kind, _ in response.context["page"].kinds] == ["email", "sms"]
    assert "SMS" in response.content.decode() and PHONE in response.content.decode()


def test_required_events_say_why_and_cannot_be_turned_off(setup):
    client = logged_in(setup["user"])
    response = client.get("/preferences/")
    reset = setup["reset"]
    assert switches(response)[f"pref-{reset.pk}-email"] == (True, False)
    html = response.content.decode()
    assert "We send it only when you ask for a new password." in html
    client.post("/preferences/", form_of(response, everything=False))
    assert sent_on(setup, setup["user"], "account-reset") == ["console", "email", "relay"]


def test_turning_an_event_off_by_email_covers_every_email_channel_and_keeps_history(setup):
    user, news = setup["user"], setup["news"]
    client = logged_in(user)
    response = client.get("/preferences/")
    name = f"pref-{news.pk}-email"
    response = client.post("/preferences/", form_of(response, **{name: False}))
    assert (response.status_code, response["Location"]) == (302, "/preferences/?saved=1")
    optout = OptOut.objects.get()
    assert (optout.user, optout.event, optout.kind, optout.channel) == (user, news, "email", None)
    assert (optout.source, optout.created_by) == ("preferences", user)
    assert sent_on(setup, user) == ["console"]  # neither email channel; operators' one stays
    response = client.get("/preferences/?saved=1")
    assert switches(response)[name] == (False, True)

    client.post("/preferences/", form_of(response))  # the same again: nothing more
    assert OptOut.objects.count() == 1

    response = client.post(
        "/preferences/", form_of(response, **{name: True}), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "Saved." in response.content.decode()
    assert "<html" not in response.content.decode()
    optout.refresh_from_db()  # not deleted: revoked, by whom and how
    assert optout.revoked_at is not None
    assert (optout.revoked_by, optout.revoked_source) == (user, "preferences")
    assert sent_on(setup, user) == ["console", "email", "relay"]


def test_turning_off_a_whole_kind_stops_it_for_every_event_but_required_ones(setup):
    user = setup["user"]
    ChannelAddress.objects.create(user=user, kind="phone", address=PHONE)
    client = logged_in(user)
    response = client.get("/preferences/")
    client.post("/preferences/", form_of(response, kind_sms=False))
    optout = OptOut.objects.get()
    assert (optout.kind, optout.event, optout.channel, optout.source) == (
        "sms",
        None,
        None,
        "preferences",
    )
    assert "sms" not in sent_on(setup, user) and "sms" not in sent_on(setup, user, "tips")
    assert "sms" in sent_on(setup, user, "account-reset")
    response = client.get("/preferences/")
    assert switches(response)["kind-sms"] == (False, True)
    assert switches(response)[f"pref-{setup['news'].pk}-sms"] == (False, False)  # held by it


def test_everything_off_leaves_only_required_events(setup):
    user = setup["user"]
    client = logged_in(user)
    response = client.get("/preferences/")
    client.post("/preferences/", form_of(response, everything=False))
    optout = OptOut.objects.get()
    assert optout.scope == OptOut.Scope.ALL
    assert sent_on(setup, user) == [] and sent_on(setup, user, "tips") == []
    assert sent_on(setup, user, "account-reset") == ["console", "email", "relay"]
    response = client.get("/preferences/")
    assert switches(response)["everything"] == (False, True)
    client.post("/preferences/", form_of(response, everything=True))
    assert not OptOut.objects.active().exists()
    assert sent_on(setup, user) == ["console", "email", "relay"]


def test_the_marketing_switch_covers_marketing_events_only(setup):
    user = setup["user"]
    client = logged_in(user)
    response = client.get("/preferences/")
    client.post("/preferences/", form_of(response, marketing=False))
    assert OptOut.objects.get().scope == OptOut.Scope.MARKETING
    assert sent_on(setup, user, "tips") == []  # marketing, on every channel
    assert sent_on(setup, user) == ["console", "email", "relay"]


def test_turning_on_splits_an_event_wide_opt_out(setup):
    user, news = setup["user"], setup["news"]
    ChannelAddress.objects.create(user=user, kind="phone", address=PHONE)
    OptOut.objects.create(user=user, event=news, reason="admin")  # every channel
    client = logged_in(user)
    response = client.get("/preferences/")
    assert switches(response)[f"pref-{news.pk}-sms"] == (False, True)
    client.post("/preferences/", form_of(response, **{f"pref-{news.pk}-email": True}))
    (remaining,) = OptOut.objects.active()
    assert (remaining.event, remaining.kind) == (news, "sms")
    assert OptOut.objects.get(reason="admin").revoked_at is not None


def test_a_bounced_address_locks_its_kind_with_the_reason(setup):
    user = setup["user"]
    for channel in (setup["email"], setup["relay"]):
        OptOut.objects.create(address="ann@example.com", channel=channel, source="bounce")
    client = logged_in(user)
    response = client.get("/preferences/")
    assert switches(response)["kind-email"] == (False, False)
    assert "bounced" in response.content.decode()
    client.post("/preferences/", {**form_of(response), "kind-email": "on"})
    assert OptOut.objects.active().count() == 2


def test_an_unsubscribe_from_one_channel_shows_off_and_turning_on_revokes_it(setup):
    user, news, relay = setup["user"], setup["news"], setup["relay"]
    OptOut.objects.create(address="ANN@example.com", event=news, channel=relay, source="link")
    client = logged_in(user)
    response = client.get("/preferences/")
    name = f"pref-{news.pk}-email"
    assert switches(response)[name] == (False, True)
    client.post("/preferences/", form_of(response, **{name: True}))
    assert not OptOut.objects.active().exists()


def test_signed_link_opens_the_preferences_without_login(setup):
    user, news, tips = setup["user"], setup["news"], setup["tips"]
    path = preferences_url(user_id=user.pk).removeprefix("http://127.0.0.1:8000")
    client = Client(enforce_csrf_checks=True)
    response = client.get(path)
    assert response.status_code == 200
    assert "ann" in response.content.decode()
    token = client.cookies["csrftoken"].value
    assert client.post(path, {}).status_code == 403  # CSRF applies
    form = form_of(response, **{f"pref-{news.pk}-email": False})
    response = client.post(path, form, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 302
    optout = OptOut.objects.get()
    assert (optout.event, optout.kind, optout.created_by) == (news, "email", None)
    assert tips.pk  # untouched
    assert OptOut.objects.filter(event=tips).count() == 0


def test_address_link_manages_one_kind(setup):
    news = setup["news"]
    path = preferences_url(address="guest@example.com", channel_key="email").removeprefix(
        "http://127.0.0.1:8000"
    )
    client = Client()
    response = client.get(path)
    assert [kind.kind for kind, _ in response.context["page"].kinds] == ["email"]
    client.post(path, form_of(response, **{f"pref-{news.pk}-email": False}))
    optout = OptOut.objects.get()
    assert (optout.user, optout.address, optout.event, optout.kind) == (
        None,
        "guest@example.com",
        news,
        "email",
    )
    assert notify("newsletter", {"email": "guest@example.com"}, {"order_id": "1"}).skipped


def test_an_operators_channel_link_opens_nothing(setup):
    path = preferences_url(address="guest@example.com", channel_key="console").removeprefix(
        "http://127.0.0.1:8000"
    )
    assert Client().get(path).status_code == 404


def test_tampered_or_expired_preference_links_get_400(setup, settings):
    path = preferences_url(user_id=setup["user"].pk).removeprefix("http://127.0.0.1:8000")
    response = Client().get(path.replace("/link/", "/link/x"))
    assert response.status_code == 400
    assert "not valid" in response.content.decode()
    forged = signing.TimestampSigner(salt="other").sign_object({"u": setup["user"].pk})
    assert Client().get(f"/preferences/link/{forged}/").status_code == 400
    settings.NOTIFIER = {**settings.NOTIFIER, "LINK_MAX_AGE": -1}
    response = Client().get(path)
    assert response.status_code == 400 and "expired" in response.content.decode()


def test_preferences_need_a_login(client, setup):
    assert client.get("/preferences/")["Location"] == "/accounts/login/?next=/preferences/"


def test_an_all_marketing_opt_out_shows_marketing_events_off_only(setup):
    user, news, tips = setup["user"], setup["news"], setup["tips"]
    OptOut.objects.create(address="ann@example.com", marketing=True, source="link")
    page = preferences_read(preferences_subject_for_user(user))
    state = {s.name: (s.on, s.editable) for s in page.switches()}
    assert state["marketing"] == (False, True)
    assert state[f"pref-{tips.pk}-email"] == (False, False)
    assert state[f"pref-{news.pk}-email"] == (True, True)


def test_the_sites_social_accounts_are_not_peoples_channels(setup):
    """A VK channel with a default wall gives every user an "address", but it posts to the
    site's own wall: people cannot opt out of it in their preference centre."""
    factories.ChannelFactory(
        key="vk-wall",
        backend="social.vk",
        config={"access_token": "vk1.a.token", "owner_id": "-123456"},
    )
    keys = [channel.key for channel in preferences_subject_for_user(setup["user"]).channels]
    assert "email" in keys and "vk-wall" not in keys and "console" not in keys
