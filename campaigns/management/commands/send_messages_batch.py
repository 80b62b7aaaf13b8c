from django.core.management.base import BaseCommand

from campaigns.outbox.sweep import drain


class Command(BaseCommand):
    help = "Send every message that is due now, in this process, without RQ workers."

    def handle(self, *args, verbosity=1, **options):
        totals = drain()
        if verbosity:
            self.stdout.write(
                " ".join(f"{k}={v}" for k, v in sorted(totals.items())) or "nothing due"
            )
