import time

from django.core.management.base import BaseCommand

from campaigns.conf import app_settings
from campaigns.services.sweep import sweep


class Command(BaseCommand):
    help = (
        "Run the sweep: enqueue due scheduled and retrying messages and reclaim expired "
        "leases. One pass, or every SWEEP_INTERVAL seconds with --loop (the same code RQ's "
        "cron scheduler runs)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="repeat until interrupted")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="seconds between passes (default: NOTIFIER SWEEP_INTERVAL)",
        )

    def handle(self, *args, loop=False, interval=None, verbosity=1, **options):
        interval = interval or app_settings.SWEEP_INTERVAL
        try:
            while True:
                summary = sweep()
                if verbosity:
                    self.stdout.write(" ".join(f"{k}={v}" for k, v in summary.as_dict().items()))
                if not loop:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("stopped")
