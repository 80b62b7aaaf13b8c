from django.core.management.base import BaseCommand

from campaigns.registry import sync_all


class Command(BaseCommand):
    help = (
        "Write channels and events declared in settings and notifications.py modules "
        "into the database."
    )

    def handle(self, *args, **options):
        written = sync_all()
        self.stdout.write(
            f"channels: {', '.join(written['channels']) or '-'}; "
            f"events: {', '.join(written['events']) or '-'}"
        )
