"""Rewrite every channel's secrets with the first of NOTIFIER_SECRET_KEYS: after a new key
was put first (rotation), and before the old one is dropped."""

from django.core.management.base import BaseCommand
from django.db import transaction

from channels.models import ChannelConfig


class Command(BaseCommand):
    help = (
        "Encrypt every channel's secret options again with the first key of "
        "NOTIFIER_SECRET_KEYS (run after adding a new key first, before removing the old one)."
    )

    def handle(self, *args, **options):
        count = 0
        with transaction.atomic():
            # Loading decrypts with any listed key; saving encrypts with the first one.
            for channel in ChannelConfig.objects.select_for_update().order_by("pk"):
                channel.save(update_fields=["config", "declared"])
                count += 1
        self.stdout.write(f"Encrypted the secrets of {count} channel(s) with the first key.")
