"""``manage.py bench_campaign --recipients N --workers W``: a campaign to N imported
contacts on a null channel, fanned out and sent by W real RQ worker processes.

Prints recipients/s for the fan-out (message rows written), messages/s end to end (from
"send now" to the last message sent), and the peak memory of each worker and of this
process. Everything it creates is deleted afterwards (``--keep`` keeps it).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from campaigns.broadcast.fanout import campaign_schedule
from campaigns.conf import app_settings
from campaigns.content.versions import template_publish
from campaigns.models import (
    Audience,
    Campaign,
    CampaignChunk,
    Contact,
    Event,
    Message,
    MessageAttempt,
    Template,
)
from campaigns.outbox.queueing import get_queue
from channels.models import ChannelConfig

KEY = "bench-campaign"


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory of a live process (Linux's VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


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
        queue = get_queue()
        if queue.count:
            raise CommandError(
                f"the queue {queue.name!r} holds {queue.count} job(s): run the benchmark on an "
                "idle queue (or empty it) so its figures mean something"
            )
        self.cleanup()
        vendor = connection.vendor
        self.stdout.write(
            f"bench_campaign: {recipients} recipients, {workers} worker(s), {vendor} "
            f"({settings.DATABASES['default']['NAME']}), chunk {app_settings.CAMPAIGN_CHUNK}, "
            f"batch {app_settings.BATCH_SIZE}"
        )
        campaign = self.prepare(recipients)
        processes = self.workers_start(workers)
        try:
            started = time.monotonic()
            campaign_schedule(campaign)
            chunks = CampaignChunk.objects.filter(campaign=campaign)
            sent = Message.objects.filter(campaign=campaign, status="sent")
            peaks: dict[int, float] = {}
            fanout_seconds = None
            deadline = started + timeout
            while True:
                for process in processes:
                    if process.poll() is not None:
                        raise CommandError(f"a worker exited with {process.returncode}")
                    peak = peak_rss_mb(process.pid)
                    if peak:
                        peaks[process.pid] = max(peaks.get(process.pid, 0), peak)
                if fanout_seconds is None and not chunks.filter(status="pending").exists():
                    fanout_seconds = time.monotonic() - started
                if fanout_seconds is not None and sent.count() >= recipients:
                    break
                if time.monotonic() > deadline:
                    raise CommandError(f"not done after {timeout:.0f}s: {sent.count()} sent")
                time.sleep(0.25)
            total_seconds = time.monotonic() - started
            campaign.refresh_from_db()
            # The exact figures come from the rows' own times, not from this polling loop.
            fanout_end = chunks.aggregate(end=Max("done_at"))["end"]
            last_sent = sent.aggregate(end=Max("sent_at"))["end"]
            begin = campaign.started_at
            fanout_exact = (fanout_end - begin).total_seconds() if fanout_end else fanout_seconds
            total_exact = (last_sent - begin).total_seconds() if last_sent else total_seconds
        finally:
            self.workers_stop(processes)
        written = Message.objects.filter(campaign=campaign).count()
        own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.stdout.write(
            f"fan-out:     {written} rows in {fanout_exact:.2f}s = "
            f"{written / fanout_exact:,.0f} recipients/s"
        )
        self.stdout.write(
            f"end to end:  {recipients} sent in {total_exact:.2f}s = "
            f"{recipients / total_exact:,.0f} messages/s"
        )
        for number, peak in enumerate(peaks.values(), 1):
            self.stdout.write(f"peak memory: worker {number} {peak:.0f} MB")
        self.stdout.write(f"peak memory: this command {own_peak:.0f} MB")
        if not keep:
            self.cleanup()

    def prepare(self, recipients: int) -> Campaign:
        channel = ChannelConfig.objects.create(
            key=KEY, name="Benchmark (null)", backend="channels.backends.null.NullBackend"
        )
        event = Event.objects.create(
            key=KEY,
            name="Benchmark",
            variables=[{"name": "headline", "label": "Headline", "sample": "News"}],
        )
        template = Template.objects.create(
            event=event,
            channel=channel,
            language="en",
            subject="{{ headline }}",
            text_body="Hello {{ recipient.name }}, {{ headline }}. Your plan: {{ recipient.plan }}",
        )
        template_publish(template=template, note="Benchmark")
        audience = Audience.objects.create(name=KEY, kind="contacts")
        self.contacts_write(audience, recipients)
        campaign = Campaign.objects.create(
            name=KEY, event=event, audience=audience, context={"headline": "Benchmark"}
        )
        campaign.channels.set([channel])
        return campaign

    def contacts_write(self, audience: Audience, n: int) -> None:
        """The contact list; through COPY on PostgreSQL (the set-up is not what is measured)."""
        now = timezone.now()
        if connection.vendor == "postgresql":
            columns = "audience_id, email, phone, name, language, tz, data, created_at"
            with connection.cursor() as cursor:
                sql = f"COPY {Contact._meta.db_table} ({columns}) FROM STDIN"
                with cursor.copy(sql) as copy:
                    for i in range(n):
                        copy.write_row(
                            (
                                audience.pk,
                                f"b{i}@bench.example",
                                "",
                                f"Reader {i}",
                                "en",
                                "",
                                '{"plan": "pro"}',
                                now,
                            )
                        )
            return
        Contact.objects.bulk_create(
            [
                Contact(
                    audience=audience,
                    email=f"b{i}@bench.example",
                    name=f"Reader {i}",
                    language="en",
                    data={"plan": "pro"},
                )
                for i in range(n)
            ],
            batch_size=5000,
        )

    def workers_start(self, n: int) -> list[subprocess.Popen]:
        manage = Path(settings.BASE_DIR) / "manage.py"
        return [
            subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
                [
                    sys.executable,
                    str(manage),
                    "rqworker",
                    app_settings.QUEUE,
                    "--worker-class",
                    "rq.worker.SimpleWorker",
                ],
                env=os.environ.copy(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for _ in range(n)
        ]

    def workers_stop(self, processes: list[subprocess.Popen]) -> None:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def cleanup(self) -> None:
        campaigns = Campaign.objects.filter(name=KEY)
        messages = Message.objects.filter(event__key=KEY)
        MessageAttempt.objects.filter(message__in=messages).delete()
        messages.delete()
        campaigns.delete()
        Audience.objects.filter(name=KEY).delete()
        Template.objects.filter(event__key=KEY).delete()
        Event.objects.filter(key=KEY).delete()
        ChannelConfig.objects.filter(key=KEY).delete()
