from django.core.management.base import BaseCommand

from campaigns.tracking.receipts import push_receipts_poll


class Command(BaseCommand):
    help = (
        "Ask Expo for the receipts of push messages sent more than PUSH_RECEIPT_DELAY seconds "
        "ago and record them (delivered, failed, dead tokens deactivated). One pass: the same "
        "code RQ's cron scheduler runs every PUSH_RECEIPT_INTERVAL seconds."
    )

    def handle(self, *args, verbosity=1, **options):
        summary = push_receipts_poll()
        if verbosity:
            self.stdout.write(" ".join(f"{k}={v}" for k, v in summary.as_dict().items()))
