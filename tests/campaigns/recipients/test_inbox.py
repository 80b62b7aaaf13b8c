"""The inbox page, its htmx fragments, its JSON API, and who may see and change what."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from campaigns.api import notify
from campaigns.models import ApiToken, Message, MessageStatus
from campaigns.outbox.sweep import drain
from channels.models import ChannelConfig
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox_channel():
    channel, _ = ChannelConfig.objects.update_or_create(
        key="inbox",
        defaults={"name": "In-app inbox", "backend": "channels.backends.inbox.InboxBackend"},
    )
    return channel


@pytest.fixture
def event():
    return factories.EventFactory(
        key="news", variables=[{"name": "title", "label": "Title", "sample": "Hi"}]
    )


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-123")


def inbox_items(user, count, *, event, channel, start=0, **fields):
    """Sent inbox messages for ``user``, the last one the newest."""
    now = timezone.now()
    rows = [
        Message(
            event=event,
            channel=channel,
            address=str(user.pk),
            user=user,
            subject=f"Item {start + i}",
            text=f"Body {start + i}",
            status=MessageStatus.SENT,
            **fields,
        )
        for i in range(count)
    ]
    Message.objects.bulk_create(rows)
    for i, row in enumerate(rows):  # distinct times, in order
        Message.objects.filter(pk=row.pk).update(created_at=now - dt.timedelta(minutes=count - i))
    return rows


def logged_in(user, *, csrf=False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def test_inbox_needs_a_login(client, inbox_channel):
    response = client.get("/inbox/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/inbox/"
    assert client.get("/accounts/login/").status_code == 200


def test_login_page_leads_to_the_inbox(client, alice, inbox_channel):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "pw-alice-123", "next": "/inbox/"}
    )
    assert (response.status_code, response["Location"]) == (302, "/inbox/")


def test_inbox_lists_newest_first_with_badge_and_marks_seen(alice, bob, event, inbox_channel):
    inbox_items(alice, 3, event=event, channel=inbox_channel)
    inbox_items(bob, 2, event=event, channel=inbox_channel, start=10)
    email = factories.memory_channel("mail")
    Message.objects.create(  # not on the inbox channel: not an inbox item
        event=event,
        channel=email,
        address="a@example.com",
        user=alice,
        subject="Mail",
        status=MessageStatus.SENT,
    )

    response = logged_in(alice).get("/inbox/")
    html = response.content.decode()
    assert response.status_code == 200
    assert [m.subject for m in response.context["page"].items] == ["Item 2", "Item 1", "Item 0"]
    assert "Item 10" not in html and "Mail" not in html
    assert 'data-count="3"' in html  # the badge
    assert html.count('class="nt-new"') == 3  # new on this visit …
    assert (
        Message.objects.filter(user=alice, seen_at__isnull=True, channel=inbox_channel).count() == 0
    )
    html = logged_in(alice).get("/inbox/").content.decode()
    assert 'class="nt-new"' not in html  # … and not on the next one
    assert 'data-count="3"' in html  # seen is not read: still 3 unread


def test_unread_filter_and_consume_by_form_and_by_htmx(alice, event, inbox_channel):
    first, second, _third = inbox_items(alice, 3, event=event, channel=inbox_channel)
    client = logged_in(alice)

    response = client.post(f"/inbox/{first.uuid}/done/", {"next": "/inbox/?filter=unread"})
    assert (response.status_code, response["Location"]) == (302, "/inbox/?filter=unread")
    response = client.post(f"/inbox/{second.uuid}/done/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Trigger"] == "notifier:inbox-changed"
    assert "Done</span>" in response.content.decode() and "<html" not in response.content.decode()
    first.refresh_from_db()
    assert first.consumed_at is not None and first.seen_at is not None

    page = client.get("/inbox/?filter=unread").context["page"]
    assert [m.subject for m in page.items] == ["Item 2"]
    assert page.unread == 1
    badge = client.get("/inbox/badge/").content.decode()
    assert 'data-count="1"' in badge and "hx-trigger" in badge

    again = client.post(f"/inbox/{first.uuid}/done/")  # harmless
    assert again.status_code == 302
    assert Message.objects.get(pk=first.pk).consumed_at == first.consumed_at


def test_open_consumes_and_follows_the_link(alice, event, inbox_channel):
    (item,) = inbox_items(
        alice, 1, event=event, channel=inbox_channel, extra={"url": "https://shop.example/o/1"}
    )
    (unsafe,) = inbox_items(
        alice, 1, event=event, channel=inbox_channel, extra={"url": "javascript:alert(1)"}
    )
    client = logged_in(alice)
    assert "Open</button>" in client.get("/inbox/").content.decode()
    response = client.post(f"/inbox/{item.uuid}/open/")
    assert (response.status_code, response["Location"]) == (302, "https://shop.example/o/1")
    assert Message.objects.get(pk=item.pk).consumed_at is not None
    assert client.post(f"/inbox/{unsafe.uuid}/open/")["Location"] == "/inbox/"


def test_mark_all_as_seen(alice, event, inbox_channel):
    inbox_items(alice, 25, event=event, channel=inbox_channel)
    client = logged_in(alice)
    client.get("/inbox/")  # the first page only
    assert Message.objects.filter(user=alice, seen_at__isnull=True).count() == 5
    response = client.post("/inbox/seen/", HTTP_HX_REQUEST="true")
    assert response["HX-Trigger"] == "notifier:inbox-changed"
    assert Message.objects.filter(user=alice, seen_at__isnull=True).count() == 0
    assert client.post("/inbox/seen/")["Location"] == "/inbox/"


def test_cursor_pagination_appends_with_htmx(alice, event, inbox_channel):
    inbox_items(alice, 45, event=event, channel=inbox_channel)
    client = logged_in(alice)
    page = client.get("/inbox/").context["page"]
    assert len(page.items) == 20 and page.next_cursor
    subjects = [m.subject for m in page.items]
    seen = set(subjects)
    cursor = page.next_cursor
    while cursor:
        response = client.get(f"/inbox/?cursor={cursor}", HTTP_HX_REQUEST="true")
        assert "<html" not in response.content.decode()
        page = response.context["page"]
        batch = [m.subject for m in page.items]
        assert not seen & set(batch)
        seen |= set(batch)
        subjects += batch
        cursor = page.next_cursor
    assert subjects == [f"Item {i}" for i in range(44, -1, -1)]
    assert client.get("/inbox/?cursor=garbage").status_code == 400


#: The inbox page's queries, whatever the inbox holds: session, user, inbox channels, unread
#: and unseen counts, the page of items, marking the new ones seen, the badge's count, and the
#: Web Push offer's channels; with new items, whether an escalation waits on them (one
#: indexed read: README "Fallback and escalation").
INBOX_PAGE_QUERIES = 11


def test_inbox_page_query_count_is_pinned(alice, event, inbox_channel, django_assert_num_queries):
    client = logged_in(alice)
    inbox_items(alice, 2, event=event, channel=inbox_channel)
    client.get("/inbox/")
    for more in (3, 60):  # new items on the page each time, so marking them seen is counted
        inbox_items(alice, more, event=event, channel=inbox_channel)
        with django_assert_num_queries(INBOX_PAGE_QUERIES):
            assert client.get("/inbox/").status_code == 200


def test_unread_count_is_covered_by_its_index(alice, bob, event, inbox_channel):
    email = factories.memory_channel("mail")
    now = timezone.now()
    Message.objects.bulk_create(
        [
            Message(
                event=event,
                channel=channel,
                address="x",
                user=user,
                status=status,
                consumed_at=consumed,
            )
            for user, channel, status, consumed, count in [
                (bob, inbox_channel, MessageStatus.SENT, None, 1500),
                (alice, inbox_channel, MessageStatus.SENT, now, 1500),
                (alice, email, MessageStatus.SENT, None, 1500),
                (alice, inbox_channel, MessageStatus.QUEUED, None, 500),
                (alice, inbox_channel, MessageStatus.SENT, None, 5),
            ]
            for _ in range(count)
        ],
        batch_size=2000,
    )
    from campaigns.recipients.inbox import inbox_messages, inbox_unread_count

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE campaigns_message")
    query = inbox_messages(user=alice).filter(consumed_at__isnull=True).order_by()
    plan = query.explain()
    assert "message_user_unread_idx" in plan, plan
    assert inbox_unread_count(user=alice) == 5


def test_content_is_escaped(alice, inbox_channel):
    event = factories.EventFactory(
        key="hello", variables=[{"name": "name", "label": "Name", "sample": "x"}]
    )
    factories.TemplateFactory(
        event=event,
        channel=inbox_channel,
        subject="Hi {{ name }}",
        text_body="Hello {{ name }}",
        html_body="<p>Hello {{ name }}</p>",
    )
    notify("hello", alice, {"name": "<script>alert('x')</script>"})
    drain()
    html = logged_in(alice).get("/inbox/").content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    data = logged_in(alice).get("/api/inbox/").json()
    assert data["items"][0]["text"] == "Hello <script>alert('x')</script>"  # JSON: raw, as data


# --- other users' messages -----------------------------------------------------------------


def test_a_user_cannot_see_or_change_another_users_messages(alice, bob, event, inbox_channel):
    (item,) = inbox_items(alice, 1, event=event, channel=inbox_channel)
    client = logged_in(bob)
    assert "Item 0" not in client.get("/inbox/").content.decode()
    assert client.post(f"/inbox/{item.uuid}/done/").status_code == 404
    assert client.post(f"/inbox/{item.uuid}/open/").status_code == 404
    client.post("/inbox/seen/")
    assert client.get("/api/inbox/").json()["items"] == []
    assert client.post(f"/api/inbox/{item.uuid}/consume/").status_code == 404
    client.post(
        "/api/inbox/seen/", json.dumps({"ids": [str(item.uuid)]}), content_type="application/json"
    )
    item.refresh_from_db()
    assert item.seen_at is None and item.consumed_at is None


def test_state_changes_need_csrf(alice, event, inbox_channel):
    (item,) = inbox_items(alice, 1, event=event, channel=inbox_channel)
    client = logged_in(alice, csrf=True)
    for path in (f"/inbox/{item.uuid}/done/", f"/inbox/{item.uuid}/open/", "/inbox/seen/"):
        assert client.post(path).status_code == 403, path
    for path in (f"/api/inbox/{item.uuid}/consume/", "/api/inbox/seen/"):
        assert client.post(path, "{}", content_type="application/json").status_code == 403, path
    item.refresh_from_db()
    assert item.seen_at is None and item.consumed_at is None

    client.get("/inbox/")  # sets the CSRF cookie; the page sends it in hx-headers
    token = client.cookies["csrftoken"].value
    response = client.post(f"/inbox/{item.uuid}/done/", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 302


# --- the JSON API ----------------------------------------------------------------------------


def test_json_api_with_a_token(alice, bob, event, inbox_channel):
    inbox_items(alice, 3, event=event, channel=inbox_channel, extra={"url": "/orders/1"})
    _, raw = ApiToken.generate(user=alice, name="phone")
    api = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {raw}")

    data = api.get("/api/inbox/").json()
    assert [i["subject"] for i in data["items"]] == ["Item 2", "Item 1", "Item 0"]
    assert (data["unread"], data["unseen"], data["next_cursor"]) == (3, 3, None)
    assert data["items"][0]["url"] == "/orders/1"
    first, second = data["items"][0]["id"], data["items"][1]["id"]

    response = api.post(
        "/api/inbox/seen/", json.dumps({"ids": [first]}), content_type="application/json"
    )
    assert response.json() == {"marked": 1, "unread": 3}
    assert (
        api.post("/api/inbox/seen/", '{"all": true}', content_type="application/json").json()[
            "marked"
        ]
        == 2
    )
    consumed = api.post(f"/api/inbox/{second}/consume/").json()
    assert consumed["id"] == second and consumed["consumed_at"]
    assert api.get("/api/inbox/unread-count/").json() == {"unread": 2}
    assert api.get("/api/inbox/?filter=unread").json()["unread"] == 2
    assert ApiToken.objects.get(user=alice).last_used_at is not None


def test_json_api_refuses_without_valid_credentials(alice, event, inbox_channel):
    token, raw = ApiToken.generate(user=alice)
    assert Client().get("/api/inbox/").status_code == 401
    bad = Client(HTTP_AUTHORIZATION="Bearer ntf_not-a-token")
    assert bad.get("/api/inbox/unread-count/").status_code == 401
    token.is_active = False
    token.save(update_fields=["is_active"])
    assert Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/inbox/").status_code == 401
    assert ApiToken.objects.get(pk=token.pk).key_hash != raw  # only a hash is stored


def test_json_api_with_the_session(alice, event, inbox_channel):
    (item,) = inbox_items(alice, 1, event=event, channel=inbox_channel)
    client = logged_in(alice, csrf=True)
    assert client.get("/api/inbox/unread-count/").json() == {"unread": 1}
    client.get("/inbox/")
    response = client.post(
        f"/api/inbox/{item.uuid}/consume/", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value
    )
    assert response.status_code == 200
    assert client.get("/api/inbox/unread-count/").json() == {"unread": 0}
    assert (
        client.post("/api/inbox/seen/", "[1]", content_type="application/json").status_code == 403
    )


def test_create_api_token_command(alice):
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("create_api_token", "alice", "--name", "cli", stdout=out)
    raw = out.getvalue().strip()
    assert raw.startswith("ntf_")
    assert Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/inbox/unread-count/").json() == {
        "unread": 0
    }


def test_marking_seen_with_an_id_not_in_your_inbox_is_404_and_marks_nothing(
    alice, bob, event, inbox_channel
):
    """As for every other API call: another user's message, or an unknown id, is 404 — the
    same answer for both, so it does not tell whether the id exists — and nothing changes."""
    own, other_own = inbox_items(alice, 2, event=event, channel=inbox_channel)
    (foreign,) = inbox_items(bob, 1, event=event, channel=inbox_channel)
    _, raw = ApiToken.generate(user=alice, name="phone")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")

    def seen(*ids):
        body = json.dumps({"ids": [str(i) for i in ids]})
        return api.post("/api/inbox/seen/", body, content_type="application/json")

    answers = [seen(foreign.uuid), seen(own.uuid, foreign.uuid), seen(uuid.uuid4())]
    assert {(r.status_code, r.content) for r in answers} == {
        (404, b'{"error": "no such message in your inbox"}')
    }
    assert not Message.objects.filter(seen_at__isnull=False).exists()

    response = seen(own.uuid, own.uuid)
    assert (response.status_code, response.json()) == (200, {"marked": 1, "unread": 2})
    assert seen(own.uuid).json() == {"marked": 0, "unread": 2}  # already seen: still yours
    other_own.refresh_from_db()
    foreign.refresh_from_db()
    assert other_own.seen_at is None and foreign.seen_at is None


# --- archive, the live heading, unread beyond colour, the signed "mark as read" link ---------


def test_archive_puts_an_item_away_and_reads_it(alice, bob, event, inbox_channel):
    first, second = inbox_items(alice, 2, event=event, channel=inbox_channel)
    client = logged_in(alice)
    response = client.post(f"/inbox/{second.uuid}/archive/", HTTP_HX_REQUEST="true")
    assert (response.status_code, response.content) == (200, b"")  # the item leaves the list
    assert response["HX-Trigger"] == "notifier:inbox-changed"
    second.refresh_from_db()
    assert second.archived_at and second.consumed_at and second.status == "sent"
    html = client.get("/inbox/").content.decode()
    assert "Item 0" in html and "Item 1" not in html
    html = client.get("/inbox/?filter=archived").content.decode()
    assert "Item 1" in html and "Item 0" not in html and "<h1" in html and ">Archive<" in html
    assert client.get("/inbox/summary/").content.decode().count("1 unread") == 1
    response = client.post(f"/inbox/{first.uuid}/archive/")  # without htmx: back to the inbox
    assert (response.status_code, response["Location"]) == (302, "/inbox/")
    assert logged_in(bob).post(f"/inbox/{first.uuid}/archive/").status_code == 404


def test_the_heading_follows_the_unread_count(alice, event, inbox_channel):
    (item,) = inbox_items(alice, 1, event=event, channel=inbox_channel)
    client = logged_in(alice)
    html = client.get("/inbox/").content.decode()
    summary = html[html.index('id="inbox-summary"') - 30 :]
    summary = summary[: summary.index("</p>")]
    assert "1 unread" in summary
    assert 'hx-get="/inbox/summary/"' in summary and "notifier:inbox-changed from:body" in summary
    client.post(f"/inbox/{item.uuid}/done/", HTTP_HX_REQUEST="true")  # triggers the refresh
    assert "All read" in client.get("/inbox/summary/").content.decode()


def test_unread_items_say_so_in_words_not_colour_only(alice, event, inbox_channel):
    read, unread = inbox_items(alice, 2, event=event, channel=inbox_channel)
    Message.objects.filter(pk=read.pk).update(consumed_at=timezone.now())
    html = logged_in(alice).get("/inbox/").content.decode()
    items = {
        uid: body
        for uid, body in (
            (chunk.split('"', 1)[0], chunk) for chunk in html.split('id="message-')[1:]
        )
    }
    assert ">Unread</span>" in items[str(unread.uuid)]
    assert ">Unread</span>" not in items[str(read.uuid)]


def test_json_api_archives_and_lists_the_archive(alice, bob, event, inbox_channel):
    (item,) = inbox_items(alice, 1, event=event, channel=inbox_channel)
    client = logged_in(alice)
    response = client.post(f"/api/inbox/{item.uuid}/archive/")
    body = response.json()
    assert response.status_code == 200 and body["archived_at"] and body["consumed_at"]
    assert client.get("/api/inbox/").json()["items"] == []
    archived = client.get("/api/inbox/?filter=archived").json()
    assert [i["id"] for i in archived["items"]] == [str(item.uuid)]
    assert archived["unread"] == 0
    assert logged_in(bob).post(f"/api/inbox/{item.uuid}/archive/").status_code == 404


def test_emails_carry_a_signed_mark_as_read_link_whose_get_only_asks(
    alice, event, inbox_channel, email_channel, smtp
):
    factories.TemplateFactory(event=event, channel=inbox_channel, subject="{{ title }}")
    factories.TemplateFactory(
        event=event,
        channel=email_channel,
        subject="{{ title }}",
        text_body="{{ title }}\nRead it: {{ mark_read_url }}",
    )
    notify("news", alice, {"title": "Hello"})
    drain()
    (received,) = smtp.messages  # as the SMTP server got it, quoted-printable undone
    body = received.get_body(("plain",)).get_content()
    match = re.search(r"Read it: http://\S+(/read/\S+/)", body)
    assert match, body
    path = match.group(1)
    email_message = Message.objects.get(channel=email_channel)
    inbox_message = Message.objects.get(channel=inbox_channel)
    client = Client(enforce_csrf_checks=True)  # from the mail: no session
    page = client.get(path)
    assert page.status_code == 200 and "Mark as read</button>" in page.content.decode()
    inbox_message.refresh_from_db()
    assert inbox_message.consumed_at is None  # a mail scanner's GET changes nothing
    assert client.post(path).status_code == 403  # the button's POST carries CSRF
    token = client.cookies["csrftoken"].value
    done = client.post(path, HTTP_X_CSRFTOKEN=token)
    assert done.status_code == 200 and "Marked as read" in done.content.decode()
    inbox_message.refresh_from_db()
    email_message.refresh_from_db()
    assert inbox_message.consumed_at and email_message.consumed_at
    assert Client().get(path.replace("/read/", "/read/x")).status_code == 400
