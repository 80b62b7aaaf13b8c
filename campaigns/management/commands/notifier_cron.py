import logging

from django.core.management.base import BaseCommand

from campaigns.workers import ReconnectingCronScheduler


class Command(BaseCommand):
    help = (
        "Run RQ's cron scheduler for Notifier's periodic jobs (the sweep every SWEEP_INTERVAL "
        "seconds, the poll of push receipts): like 'rqcron campaigns.cron', except that a "
        "Redis outage makes it wait and go on instead of exiting."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "config_path",
            nargs="?",
            default="campaigns.cron",
            help="module or file that registers the cron jobs (default: campaigns.cron)",
        )
        parser.add_argument(
            "--logging-level",
            "-l",
            choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
            default="INFO",
        )

    def handle(self, *args, config_path="campaigns.cron", logging_level="INFO", **options):
        scheduler = ReconnectingCronScheduler(logging_level=getattr(logging, logging_level))
        scheduler.load_config_from_file(config_path)
        self.stdout.write(f"Starting cron scheduler with {len(scheduler.get_jobs())} jobs")
        scheduler.start()
