import logging
import time

from django.core.management.base import BaseCommand
from django.db import connections

from campaigns.conf import app_settings
from campaigns.jobs import sweep_pass as sweep

logger = logging.getLogger("notifier.sweep")

MAX_BACKOFF = 60.0  # seconds: the longest wait between two failed passes


class Command(BaseCommand):
    help = (
        "Run the sweep: enqueue due scheduled and retrying messages and reclaim expired "
        "leases. One pass, or every SWEEP_INTERVAL seconds with --loop (the same code RQ's "
        "cron scheduler runs). In a loop, a failed pass (database or Redis unreachable, a "
        "dropped connection) is logged and retried with backoff on a fresh connection."
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
        if not loop:
            self._report(sweep(), verbosity)
            return
        failures = 0
        try:
            while True:
                try:
                    summary = sweep()
                except Exception:  # a loop that exits leaves rows stuck until someone notices
                    failures += 1
                    # A connection the server dropped stays broken until closed: the next
                    # pass opens a new one.
                    connections.close_all()
                    wait = min(interval * 2 ** (failures - 1), MAX_BACKOFF)
                    logger.exception(
                        "sweep failed (%d in a row); next try in %.1f s", failures, wait
                    )
                    time.sleep(wait)
                    continue
                if failures:
                    logger.info("sweep works again after %d failed pass(es)", failures)
                    failures = 0
                self._report(summary, verbosity)
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("stopped")

    def _report(self, summary, verbosity):
        if verbosity:
            self.stdout.write(" ".join(f"{k}={v}" for k, v in summary.as_dict().items()))
