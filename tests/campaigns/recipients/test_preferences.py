"""The preference centre: events x channels, opt-outs written and removed, mandatory events,
and the signed link that opens it without a login."""

from __future__ import annotations

import pytest
from django.core import signing
from django.test import Client

from campaigns.models import ChannelAddress, OptOut
from campaigns.recipients.links import preferences_url
from channels.models import ChannelConfig
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(django_user_model):
    ChannelConfig.objects.update(is_active=False)  # only this test's channels count
    ChannelConfig.objects.filter(key="email").delete()
    email = factories.ChannelFactory(
        key="email", name="Email", backend="channels.backends.email.EmailBackend"
    )
    sms = factories.ChannelFactory(
        key="sms",
        name="SMS",
        backend="channels.backends.locmem.LocmemBackend",
        config={"address_key": "phone"},
    )
    news = factories.EventFactory(key="newsletter", name="Newsletter", user_configurable=True)
    tips = factories.EventFactory(key="tips", name="Tips", user_configurable=True)
    reset = factories.EventFactory(key="account-reset", name="Password reset", mandatory=True)
    hidden = factories.EventFactory(key="internal", name="Internal")
    user = django_user_model.objects.create_user("ann", "ann@example.com", "pw-ann-123")
    return {
        "email": email,
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


def cells(response) -> dict[str, tuple[bool, bool]]:
    """{"<event key>/<channel key>": (on, locked)} of the page's matrix."""
    return {
        f"{cell.event.key}/{cell.channel.key}": (cell.on, bool(cell.locked))
        for row in response.context["matrix"]
        for cell in row.cells
    }


def test_matrix_shows_configurable_and_mandatory_events_on_the_users_channels(setup):
    client = logged_in(setup["user"])
    response = client.get("/preferences/")
    assert response.status_code == 200
    # No phone address: no SMS column. Internal events are not shown.
    assert cells(response) == {
        "account-reset/email": (True, True),
        "newsletter/email": (True, False),
        "tips/email": (True, False),
    }
    ChannelAddress.objects.create(user=setup["user"], kind="phone", address="+4915100000")
    response = client.get("/preferences/")
    assert set(cells(response)) == {
        f"{e}/{c}" for e in ("account-reset", "newsletter", "tips") for c in ("email", "sms")
    }
    html = response.content.decode()
    assert "required" in html and 'name="pref-' in html and "disabled" in html


def test_saving_writes_and_removes_opt_outs(setup):
    user, news, tips, email, reset = (setup[k] for k in ("user", "news", "tips", "email", "reset"))
    client = logged_in(user)
    keep = {f"pref-{tips.pk}-{email.pk}": "on"}
    response = client.post("/preferences/", keep)  # newsletter off; reset "off" is ignored
    assert (response.status_code, response["Location"]) == (302, "/preferences/?saved=1")
    optout = OptOut.objects.get()
    assert (optout.user, optout.event, optout.channel, optout.scope) == (
        user,
        news,
        email,
        "event_channel",
    )
    assert cells(client.get("/preferences/?saved=1"))["newsletter/email"] == (False, False)

    client.post("/preferences/", keep)  # the same again: nothing more
    assert OptOut.objects.count() == 1

    both = {**keep, f"pref-{news.pk}-{email.pk}": "on"}
    response = client.post("/preferences/", both, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Saved." in response.content.decode()
    assert "<html" not in response.content.decode()
    assert not OptOut.objects.exists()
    assert not OptOut.objects.filter(event=reset).exists()


def test_turning_on_splits_an_event_wide_opt_out(setup):
    user, news, email, sms = (setup[k] for k in ("user", "news", "email", "sms"))
    ChannelAddress.objects.create(user=user, kind="phone", address="+4915100000")
    OptOut.objects.create(user=user, event=news, reason="admin")  # every channel
    client = logged_in(user)
    assert cells(client.get("/preferences/"))["newsletter/sms"] == (False, False)
    wanted = {
        f"pref-{news.pk}-{email.pk}": "on",
        f"pref-{setup['tips'].pk}-{email.pk}": "on",
        f"pref-{setup['tips'].pk}-{sms.pk}": "on",
    }
    client.post("/preferences/", wanted)
    remaining = OptOut.objects.get()
    assert (remaining.event, remaining.channel) == (news, sms)


def test_broader_opt_outs_lock_the_cells(setup):
    user, email = setup["user"], setup["email"]
    OptOut.objects.create(user=user, channel=email)
    client = logged_in(user)
    assert cells(client.get("/preferences/"))["newsletter/email"] == (False, True)
    client.post("/preferences/", {f"pref-{setup['news'].pk}-{email.pk}": "on"})
    assert OptOut.objects.count() == 1


def test_an_unsubscribed_address_shows_off(setup):
    user, news, email = setup["user"], setup["news"], setup["email"]
    OptOut.objects.create(address="ANN@example.com", event=news, channel=email)
    assert cells(logged_in(user).get("/preferences/"))["newsletter/email"] == (False, False)


def test_signed_link_opens_the_preferences_without_login(setup):
    user, news, email = setup["user"], setup["news"], setup["email"]
    path = preferences_url(user_id=user.pk).removeprefix("http://127.0.0.1:8000")
    client = Client(enforce_csrf_checks=True)
    response = client.get(path)
    assert response.status_code == 200
    assert "ann" in response.content.decode()
    token = client.cookies["csrftoken"].value
    assert client.post(path, {}).status_code == 403  # CSRF applies
    response = client.post(
        path, {f"pref-{setup['tips'].pk}-{email.pk}": "on"}, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 302
    assert OptOut.objects.get().event == news


def test_address_link_manages_one_channel(setup):
    news, email = setup["news"], setup["email"]
    path = preferences_url(address="guest@example.com", channel_key="email").removeprefix(
        "http://127.0.0.1:8000"
    )
    client = Client()
    assert set(cells(client.get(path))) == {
        "account-reset/email",
        "newsletter/email",
        "tips/email",
    }
    client.post(path, {f"pref-{setup['tips'].pk}-{email.pk}": "on"})
    optout = OptOut.objects.get()
    assert (optout.user, optout.address, optout.event) == (None, "guest@example.com", news)


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


def test_an_all_marketing_opt_out_shows_marketing_events_off_only(db, django_user_model):
    from campaigns.recipients.preferences import preferences_matrix, preferences_subject_for_user

    email = factories.ChannelFactory(key="email-pref", backend="email")
    promo = factories.EventFactory(key="promo-x", user_configurable=True, marketing=True)
    news = factories.EventFactory(key="news-x", user_configurable=True)
    for event in (promo, news):
        factories.TemplateFactory(event=event, channel=email)
    ann = django_user_model.objects.create_user("ann-x", "ann-x@example.com")
    OptOut.objects.create(address="ann-x@example.com", marketing=True)
    matrix = preferences_matrix(preferences_subject_for_user(ann))
    state = {
        row.event.key: [(c.on, c.locked) for c in row.cells if c.channel == email] for row in matrix
    }
    assert state["promo-x"] == [(False, "Turned off with all marketing")]
    assert [(on, bool(locked)) for on, locked in state["news-x"]] == [(True, False)]


def test_the_sites_social_accounts_are_not_peoples_channels(db, django_user_model):
    """A VK channel with a default wall gives every user an "address", but it posts to the
    site's own wall: people cannot opt out of it in their preference centre."""
    from campaigns.recipients.preferences import preferences_subject_for_user

    factories.ChannelFactory(key="email-pref", backend="email")
    factories.ChannelFactory(
        key="vk-wall",
        backend="social.vk",
        config={"access_token": "vk1.a.token", "owner_id": "-123456"},
    )
    ann = django_user_model.objects.create_user("ann-y", "ann-y@example.com")
    keys = [channel.key for channel in preferences_subject_for_user(ann).channels]
    assert "email-pref" in keys and "vk-wall" not in keys
