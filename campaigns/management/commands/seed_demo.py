"""Demo data for a development site: channels, events with templates, users and a round of
messages sent through the real API.

Running it again creates nothing twice: channels, events, templates and users are created
when missing (and switched back on when inactive), so edits made in the admin survive. Each
run does send a new round of demo messages (``--no-messages`` skips it):

- some sent at once, in this process (``drain()``, as ``send_messages_batch`` does);
- some scheduled a day ahead, for the sweep to hand over when their time comes;
- some left ``queued``, tagged ``demo-worker``, for the RQ worker to deliver;
- a digest: three comments collected into one message, due at the end of the hour;
- a login code that expired before a worker took it: cancelled as "expired".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import time
from collections import Counter
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from campaigns.api import notify
from campaigns.content.versions import template_publish
from campaigns.models import (
    Audience,
    AudienceKind,
    Campaign,
    Contact,
    Event,
    Message,
    RecipientProfile,
    Template,
)
from campaigns.outbox.dispatch import message_dispatch
from campaigns.outbox.sweep import drain
from campaigns.recipients.inbox import inbox_mark_seen
from campaigns.registry import sync_all
from channels.models import ChannelConfig

DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - printed on purpose: a demo login
#: Tag of every demo message; the ones left for the worker carry WORKER_TAG instead.
TAG = "demo"
WORKER_TAG = "demo-worker"
#: How soon the demo's login code expires: before any worker can take it.
EXPIRED_AFTER = dt.timedelta(milliseconds=50)

#: Channels the demo uses: the two declared in settings, plus one that prints to stdout.
CHANNELS = {
    "email": None,  # declared in settings.NOTIFIER["CHANNELS"]; created by sync_all()
    "inbox": None,
    "console": {"name": "Console", "backend": "channels.backends.console.ConsoleBackend"},
}

USERS = [
    {
        "username": "alice",
        "email": "alice@example.com",
        "first_name": "Alice",
        "last_name": "Archer",
        "language": "en",
    },
    {
        "username": "bob",
        "email": "bob@example.com",
        "first_name": "Bob",
        "last_name": "Brandt",
        "language": "de",
    },
]

EVENTS: dict[str, dict[str, Any]] = {
    "order-shipped": {
        "name": "Order shipped",
        "description": "Sent when a parcel leaves the warehouse.",
        "flags": {"user_configurable": True},
        "variables": [
            {"name": "order_id", "label": "Order", "help": "The order number", "sample": "A-1001"},
            {
                "name": "tracking_url",
                "label": "Tracking link",
                "help": "The carrier's tracking page",
                "sample": "https://track.example.com/A-1001",
            },
        ],
        "copy": {
            "en": {
                "subject": "Your order {{ order_id }} is on its way",
                "text": "Hello {{ recipient.name }},\n\nyour order {{ order_id }} has shipped.\n"
                "Track it here: {{ tracking_url }}\n",
                "button": "Track your parcel",
            },
            "de": {
                "subject": "Ihre Bestellung {{ order_id }} ist unterwegs",
                "text": "Hallo {{ recipient.name }},\n\nIhre Bestellung {{ order_id }} wurde "
                "versandt.\nSendungsverfolgung: {{ tracking_url }}\n",
                "button": "Sendung verfolgen",
            },
        },
        "link": "tracking_url",
    },
    "welcome": {
        "name": "Welcome",
        "description": "Sent once, when someone signs up.",
        "flags": {"user_configurable": True, "marketing": True},
        "variables": [
            {
                "name": "first_name",
                "label": "First name",
                "help": "Optional; falls back to the recipient's name",
                "sample": "Alice",
                "required": False,
            },
        ],
        "copy": {
            "en": {
                "subject": "Welcome, {{ first_name|default:recipient.name }}!",
                "text": "Hello {{ first_name|default:recipient.name }},\n\nthanks for signing "
                "up. We will keep you posted.\n",
            },
            "de": {
                "subject": "Willkommen, {{ first_name|default:recipient.name }}!",
                "text": "Hallo {{ first_name|default:recipient.name }},\n\ndanke für Ihre "
                "Anmeldung. Wir halten Sie auf dem Laufenden.\n",
            },
        },
    },
    "maintenance-notice": {
        "name": "Maintenance notice",
        "description": "Announces a planned maintenance window.",
        "flags": {"mandatory": True},
        "variables": [
            {
                "name": "starts_at",
                "label": "Starts at",
                "help": "When the maintenance begins",
                "sample": "Saturday 02:00 UTC",
            },
            {
                "name": "duration",
                "label": "Duration",
                "help": "How long it lasts",
                "sample": "2 hours",
            },
        ],
        "copy": {
            "en": {
                "subject": "Planned maintenance: {{ starts_at }}",
                "text": "Hello {{ recipient.name }},\n\nthe service will be down for "
                "maintenance from {{ starts_at }} for about {{ duration }}.\n",
            },
            "de": {
                "subject": "Geplante Wartung: {{ starts_at }}",
                "text": "Hallo {{ recipient.name }},\n\nder Dienst wird ab {{ starts_at }} für "
                "etwa {{ duration }} gewartet und ist in dieser Zeit nicht erreichbar.\n",
            },
        },
    },
}
EVENTS["product-news"] = {
    "name": "Product news",
    "description": "Newsletters and announcements, sent by campaigns.",
    "flags": {"user_configurable": True, "marketing": True},
    "variables": [
        {"name": "headline", "label": "Headline", "help": "The news in a line", "sample": "News"},
        {
            "name": "body",
            "label": "Text",
            "help": "A paragraph or two",
            "sample": "Our spring collection is here.",
        },
    ],
    "copy": {
        "en": {
            "subject": "{{ headline }}",
            "text": "Hello {{ recipient.name }},\n\n{{ body }}\n\n"
            "{% if recipient.plan %}As a {{ recipient.plan }} customer you see it first.\n"
            "{% endif %}",
        },
        "de": {
            "subject": "{{ headline }}",
            "text": "Hallo {{ recipient.name }},\n\n{{ body }}\n\n"
            "{% if recipient.plan %}Als {{ recipient.plan }}-Kunde sehen Sie es zuerst.\n"
            "{% endif %}",
        },
    },
}
EVENTS["comment-posted"] = {
    "name": "New comments",
    "description": "Comments on your posts, collected into an hourly digest (people may "
    "choose immediately, hourly or daily in the preference centre).",
    "flags": {"user_configurable": True, "digest": "hourly", "digest_choice": True},
    "variables": [
        {"name": "author", "label": "Author", "help": "Who commented", "sample": "Bob"},
        {"name": "comment", "label": "Comment", "help": "What they wrote", "sample": "Nice!"},
    ],
    "copy": {
        "en": {
            "subject": "{{ digest.count|default:1 }} new comment{{ digest.count|pluralize }}",
            "text": "Hello {{ recipient.name }},\n\n"
            "{% for item in digest.items %}- {{ item.author }}: {{ item.comment }}\n"
            "{% empty %}- {{ author }}: {{ comment }}\n{% endfor %}",
        },
        "de": {
            "subject": "{{ digest.count|default:1 }} neue Kommentare",
            "text": "Hallo {{ recipient.name }},\n\n"
            "{% for item in digest.items %}- {{ item.author }}: {{ item.comment }}\n"
            "{% empty %}- {{ author }}: {{ comment }}\n{% endfor %}",
        },
    },
}
EVENTS["login-code"] = {
    "name": "Login code",
    "description": "A one-time code; never sent late: it expires ten minutes after it is due.",
    "flags": {"mandatory": True, "expires_after": dt.timedelta(minutes=10)},
    "variables": [{"name": "code", "label": "Code", "help": "The code", "sample": "123456"}],
    "copy": {
        "en": {
            "subject": "Your login code: {{ code }}",
            "text": "Hello {{ recipient.name }},\n\nyour code is {{ code }}. "
            "It is valid for ten minutes.\n",
        },
        "de": {
            "subject": "Ihr Anmeldecode: {{ code }}",
            "text": "Hallo {{ recipient.name }},\n\nIhr Code lautet {{ code }}. "
            "Er gilt zehn Minuten.\n",
        },
    },
}
LANGUAGES = ("en", "de")

#: Operator accounts: a Marketing and a Support member (the admin's two roles).
STAFF = [
    {"username": "mia", "email": "mia@example.com", "first_name": "Mia", "group": "Marketing"},
    {"username": "sam", "email": "sam@example.com", "first_name": "Sam", "group": "Support"},
]

#: The demo contact list (an imported list: "plan" is an extra column templates can use).
CONTACTS = [
    ("carla@example.com", "Carla Costa", "en", "Europe/Lisbon", "pro"),
    ("dieter@example.com", "Dieter Dorn", "de", "Europe/Berlin", "basic"),
    ("emi@example.com", "Emi Endo", "en", "Asia/Tokyo", "pro"),
    ("frank@example.com", "Frank Fox", "en", "America/New_York", ""),
    ("greta@example.com", "Greta Graf", "de", "Europe/Vienna", "pro"),
]


def _paragraphs(text: str) -> list[str]:
    return [" ".join(block.split()) for block in text.strip().split("\n\n")]


def mjml_body(*, subject: str, text: str, button: str = "", link: str = "") -> str:
    """An MJML email: a heading, the text's paragraphs and an optional button."""
    blocks = "\n".join(f"        <mj-text>{p}</mj-text>" for p in _paragraphs(text))
    if button and link:
        blocks += f'\n        <mj-button href="{{{{ {link} }}}}">{button}</mj-button>'
    return (
        "<mjml>\n  <mj-body>\n    <mj-section>\n      <mj-column>\n"
        f'        <mj-text font-size="20px" font-weight="bold">{subject}</mj-text>\n'
        f"{blocks}\n      </mj-column>\n    </mj-section>\n  </mj-body>\n</mjml>\n"
    )


def html_body(*, text: str) -> str:
    return "".join(f"<p>{p}</p>" for p in _paragraphs(text))


class Command(BaseCommand):
    help = (
        "Create demo channels, events, templates (en, de) and users, then send a round of demo "
        "messages: some sent now, some scheduled, some queued for the worker. Safe to re-run."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-messages", action="store_true", help="only create the data, send nothing"
        )

    def handle(self, *args, no_messages: bool = False, verbosity: int = 1, **options):
        self.verbosity = verbosity
        sync_all()
        with transaction.atomic():
            channels = self.channels_ensure()
            events = self.events_ensure()
            created_templates = self.templates_ensure(events=events, channels=channels)
            users, created_users = self.users_ensure()
            staff = self.staff_ensure()
            campaigns = self.campaigns_ensure(events=events, channels=channels)
        self.say(
            f"channels: {', '.join(channels)}; events: {', '.join(events)}; "
            f"templates: {Template.objects.filter(event__in=events.values()).count()} "
            f"({created_templates} new); users: {len(users)} ({created_users} new)"
        )
        for user in USERS:
            self.say(f"  demo user {user['username']} / {DEMO_PASSWORD} ({user['email']})")
        for user in staff:
            self.say(f"  staff {user.username} / {DEMO_PASSWORD} ({user.groups.get().name})")
        self.say(f"campaigns: {', '.join(campaigns)} (drafts: dry run and send them in the admin)")
        if not no_messages:
            self.messages_send(users=users)

    def say(self, line: str) -> None:
        if self.verbosity:
            self.stdout.write(line)

    # --- data -------------------------------------------------------------------------------

    def channels_ensure(self) -> dict[str, ChannelConfig]:
        channels = {}
        for key, spec in CHANNELS.items():
            if spec is None:
                channel = ChannelConfig.objects.get(key=key)  # written by sync_all()
            else:
                channel, _ = ChannelConfig.objects.get_or_create(key=key, defaults=spec)
            if not channel.is_active:
                channel.is_active = True
                channel.save(update_fields=["is_active", "updated_at"])
            channels[key] = channel
        return channels

    def events_ensure(self) -> dict[str, Event]:
        events = {}
        for key, spec in EVENTS.items():
            event, _ = Event.objects.get_or_create(
                key=key,
                defaults={
                    "name": spec["name"],
                    "description": spec["description"],
                    "variables": spec["variables"],
                    # Preference centre and unsubscribe behaviour (admin edits survive).
                    **spec.get("flags", {}),
                },
            )
            if not event.is_active:
                event.is_active = True
                event.save(update_fields=["is_active", "updated_at"])
            events[key] = event
        return events

    def templates_ensure(
        self, *, events: dict[str, Event], channels: dict[str, ChannelConfig]
    ) -> int:
        existing = set(
            Template.objects.filter(event__in=events.values()).values_list(
                "event_id", "channel_id", "language"
            )
        )
        created = 0
        for key, event in events.items():
            spec = EVENTS[key]
            for language in LANGUAGES:
                copy = spec["copy"][language]
                bodies = {
                    "email": mjml_body(
                        subject=copy["subject"],
                        text=copy["text"],
                        button=copy.get("button", ""),
                        link=spec.get("link", ""),
                    ),
                    "inbox": html_body(text=copy["text"]),
                    "console": "",
                }
                for channel_key, channel in channels.items():
                    if (event.pk, channel.pk, language) in existing:
                        continue
                    template = Template(
                        event=event,
                        channel=channel,
                        language=language,
                        subject=copy["subject"],
                        text_body=copy["text"],
                        html_body=bodies[channel_key],
                    )
                    template.clean()  # compiles subject, text and MJML: fails loudly here
                    template.save()
                    template_publish(template=template, note="Seeded by seed_demo")
                    created += 1
        return created

    def users_ensure(self) -> tuple[dict[str, Any], int]:
        user_model = get_user_model()
        users, created = {}, 0
        for spec in USERS:
            user, is_new = user_model.objects.get_or_create(
                username=spec["username"],
                defaults={
                    "email": spec["email"],
                    "first_name": spec["first_name"],
                    "last_name": spec["last_name"],
                },
            )
            if is_new or not user.check_password(DEMO_PASSWORD) or not user.is_active:
                user.set_password(DEMO_PASSWORD)
                user.is_active = True
                user.save(update_fields=["password", "is_active"])
            created += is_new
            # Their language as a recipient (campaigns address users by id).
            RecipientProfile.objects.get_or_create(
                user=user, defaults={"language": spec["language"]}
            )
            users[spec["username"]] = user
        return users, created

    def staff_ensure(self) -> list[Any]:
        user_model = get_user_model()
        staff = []
        for spec in STAFF:
            user, is_new = user_model.objects.get_or_create(
                username=spec["username"],
                defaults={
                    "email": spec["email"],
                    "first_name": spec["first_name"],
                    "is_staff": True,
                },
            )
            if is_new or not user.check_password(DEMO_PASSWORD):
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
            user.groups.set([Group.objects.get(name=spec["group"])])
            staff.append(user)
        return staff

    def campaigns_ensure(
        self, *, events: dict[str, Event], channels: dict[str, ChannelConfig]
    ) -> list[str]:
        """Two audiences (every user; the imported newsletter list) and a draft campaign to
        each; edits made in the admin are kept."""
        everyone, _ = Audience.objects.get_or_create(
            name="All users", defaults={"kind": AudienceKind.ALL_USERS}
        )
        readers, created = Audience.objects.get_or_create(
            name="Newsletter readers",
            defaults={
                "kind": AudienceKind.CONTACTS,
                "description": "Imported from the shop's newsletter sign-ups",
            },
        )
        if created:
            Contact.objects.bulk_create(
                [
                    Contact(
                        audience=readers,
                        email=email,
                        name=name,
                        language=language,
                        tz=tz,
                        data={"plan": plan} if plan else {},
                    )
                    for email, name, language, tz, plan in CONTACTS
                ]
            )
        drafts = {
            "Spring newsletter": (readers, ["email"], {"local_time": dt.time(9)}),
            "Product update for users": (everyone, ["email", "inbox"], {}),
        }
        for name, (audience, channel_keys, fields) in drafts.items():
            campaign, created = Campaign.objects.get_or_create(
                name=name,
                defaults={
                    "event": events["product-news"],
                    "audience": audience,
                    "context": {
                        "headline": "Spring is here",
                        "body": "Our spring collection has arrived: light jackets, bright "
                        "colours and free returns all season.",
                    },
                    **fields,
                },
            )
            if created:
                campaign.channels.set([channels[key] for key in channel_keys])
        return list(drafts)

    # --- messages ---------------------------------------------------------------------------

    def escalations_send(self, *, users: dict[str, Any], alice: dict, bob: dict) -> list[int]:
        """README "Fallback and escalation": an inbox item each for Alice and Bob, then an
        email if it is not seen within 15 minutes. Bob looks at his inbox (his email is
        cancelled: "seen in the inbox"); Alice does not, and her email goes (the demo moves
        its time on rather than waiting 15 minutes)."""
        written = []
        for person, order in ((alice, "A-1003"), (bob, "B-2003")):
            written += notify(
                "order-shipped",
                person,
                {"order_id": order, "tracking_url": f"https://track.example.com/{order}"},
                channels=["inbox"],
                then=[("email", "15m")],
                tag=TAG,
                extra={"url": f"https://track.example.com/{order}"},
            ).messages
        drain()  # the inbox items
        bob_item = next(
            m for m in written if m.user_id == users["bob"].pk and m.channel.key == "inbox"
        )
        inbox_mark_seen(user=users["bob"], uuids=[bob_item.uuid])
        alice_email = [
            m.pk for m in written if m.user_id == users["alice"].pk and m.escalates_from_id
        ]
        Message.objects.filter(pk__in=alice_email).update(next_attempt_at=timezone.now())
        drain()  # Alice's email: her inbox item was not seen
        return [m.pk for m in written]

    @staticmethod
    def recipient(user, language: str) -> dict[str, Any]:
        return {
            "user_id": user.pk,
            "email": user.email,
            "name": user.get_full_name() or user.get_username(),
            "language": language,
        }

    def messages_send(self, *, users: dict[str, Any]) -> None:
        people = [self.recipient(users[spec["username"]], spec["language"]) for spec in USERS]
        alice, bob = people[0], people[1]
        ids: dict[str, list[int]] = {}

        # 1. Sent now, in this process.
        now_batch = [
            *notify("welcome", people, {}, tag=TAG).messages,
            *notify(
                "order-shipped",
                alice,
                {"order_id": "A-1001", "tracking_url": "https://track.example.com/A-1001"},
                tag=TAG,
                extra={"url": "https://track.example.com/A-1001"},  # the inbox item's link
            ).messages,
        ]
        # The console channel and the console mailer print every message; -v 2 shows them.
        quiet = self.verbosity < 2
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
            drain()
        ids["sent now"] = [m.pk for m in now_batch]
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
            ids["escalated"] = self.escalations_send(users=users, alice=alice, bob=bob)

        # 2. Scheduled for tomorrow: the sweep hands them to a worker when the time comes.
        tomorrow = timezone.now() + dt.timedelta(days=1)
        ids["scheduled"] = [
            m.pk
            for m in notify(
                "maintenance-notice",
                people,
                {"starts_at": tomorrow.strftime("%A %H:%M UTC"), "duration": "2 hours"},
                scheduled_at=tomorrow,
                tag=TAG,
            ).messages
        ]

        # 3. Queued: a dispatch job is enqueued after commit; the RQ worker delivers them.
        ids["for the worker"] = [
            m.pk
            for m in notify(
                "order-shipped",
                bob,
                {"order_id": "B-2002", "tracking_url": "https://track.example.com/B-2002"},
                tag=WORKER_TAG,
                extra={"url": "https://track.example.com/B-2002"},
            ).messages
        ]

        # 4. A digest: three comments within the hour are one message, due at the hour's end.
        ids["digested"] = list(
            dict.fromkeys(
                m.pk
                for author, comment in (("Bob", "Great post!"), ("Carla", "Thanks"), ("Emi", "+1"))
                for m in notify(
                    "comment-posted", alice, {"author": author, "comment": comment}, tag=TAG
                ).messages
            )
        )

        # 5. Expired: a login code whose worker came too late is cancelled, never sent late.
        with transaction.atomic():  # its dispatch is enqueued at commit: after its expiry
            code = notify(
                "login-code", bob, {"code": "493021"}, expires_at=EXPIRED_AFTER, tag=TAG
            ).messages
            time.sleep(EXPIRED_AFTER.total_seconds() * 2)
        message_dispatch(message_ids=[m.pk for m in code])
        ids["expired"] = [m.pk for m in code]

        all_ids = [pk for group in ids.values() for pk in group]
        statuses = dict(Message.objects.filter(pk__in=all_ids).values_list("pk", "status"))
        for label, group in ids.items():
            counts = Counter(statuses[pk] for pk in group)
            detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            self.say(f"messages {label}: {len(group)} ({detail or 'none'})")
