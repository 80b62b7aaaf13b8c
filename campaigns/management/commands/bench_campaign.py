"""``manage.py bench_campaign --recipients N --workers W``: a campaign to N imported
contacts on a null channel, fanned out and sent by W real RQ worker processes: the campaign
scenario of ``manage.py bench`` (``--only campaign``) without its floor.

Prints recipients/s for the fan-out (message rows written), messages/s end to end (from
"send now" to the last message sent), and the peak memory of each worker and of this
process. Everything it creates is deleted afterwards (``--keep`` keeps its rows).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from campaigns.bench import adapter, campaign
from campaigns.bench.base import Bench, Options


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("--recipients", type=int, default=100_000)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--keep", action="store_true", help="keep the benchmark's rows")
        parser.add_argument("--timeout", type=float, default=1800, help="give up after (s)")

    def handle(self, *args, recipients, workers, keep, timeout, **options):
        if recipients < 1 or workers < 1:
            raise CommandError("--recipients and --workers must be at least 1")
        queue = adapter.queue()
        if queue.count:
            raise CommandError(
                f"the queue {queue.name!r} holds {queue.count} job(s): run the benchmark on an "
                "idle queue (or empty it) so its figures mean something"
            )
        bench = Bench(
            Options.build(quick=False, recipients=recipients, workers=workers, timeout=timeout),
            self.stdout.write,
        )
        try:
            bench.reset()
            campaign.run(bench, with_floor=False)
        finally:
            bench.close(keep_rows=keep)
