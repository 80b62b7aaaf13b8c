import datetime as dt
import re

from django.core.management.base import BaseCommand, CommandError

from campaigns.outbox.actions import failed_messages_requeue

UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def duration(value: str) -> dt.timedelta:
    match = re.fullmatch(r"(\d+)([dhm])", value.strip())
    if not match:
        raise CommandError(f"--since {value!r}: use a number and d, h or m (8d, 12h, 30m)")
    return dt.timedelta(**{UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = "Requeue messages that failed within --since (e.g. 8d); older ones are left alone."

    def add_arguments(self, parser):
        parser.add_argument("--since", default="8d", help="how far back (8d, 12h, 30m)")

    def handle(self, *args, since: str, **options):
        count = failed_messages_requeue(since=duration(since))
        self.stdout.write(f"requeued {count} failed message(s) from the last {since}")
