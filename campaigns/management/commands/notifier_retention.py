from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from campaigns.conf import app_settings
from campaigns.outbox.retention import retention_preview, retention_run


class Command(BaseCommand):
    help = (
        "Delete (or strip, RETENTION_MODE=content) finished messages, attempts and decisions "
        "older than their retention age, as the hourly cron job does; --dry-run only counts."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be done; change nothing"
        )
        parser.add_argument(
            "--batch", type=int, default=None, help="rows per transaction (RETENTION_BATCH)"
        )

    def handle(self, *args, dry_run: bool, batch: int | None, **options):
        if batch is not None and batch < 1:
            raise CommandError("--batch must be at least 1")
        try:
            summary = retention_preview() if dry_run else retention_run(batch=batch)
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None
        verb = "would " if dry_run else ""
        action = "strip the content of" if summary.mode == "content" else "delete"
        if not dry_run:
            action = "stripped the content of" if summary.mode == "content" else "deleted"
        messages_age = _age(app_settings.MESSAGE_RETENTION_DAYS)
        self.stdout.write(
            f"messages: {verb}{action} {summary.messages} finished message(s) {messages_age}"
        )
        if dry_run:
            self.stdout.write(f"inbox: would keep {summary.inbox_kept} unread inbox item(s)")
        deleted = "would delete" if dry_run else "deleted"
        self.stdout.write(
            f"attempts: {deleted} {summary.attempts} {_age(app_settings.ATTEMPT_RETENTION_DAYS)}"
        )
        self.stdout.write(
            f"decisions: {deleted} {summary.decisions} {_age(app_settings.DECISION_RETENTION_DAYS)}"
        )


def _age(days: int) -> str:
    return f"older than {days} day(s)" if days > 0 else "(kept for ever)"
