"""RQ cron configuration: ``python manage.py rqcron campaigns.cron`` runs the sweep every
``NOTIFIER["SWEEP_INTERVAL"]`` seconds, the poll of Expo push receipts every
``NOTIFIER["PUSH_RECEIPT_INTERVAL"]`` seconds (as jobs on the notifier queue, so any worker
runs them), and the retention job (old finished messages, attempts and decisions, README
"Retention") every hour on the bulk queue. Several cron schedulers at once are safe: every
sweep, poll and purge skips rows another one holds."""

from django.conf import settings
from rq import cron

from campaigns.conf import app_settings
from campaigns.jobs import push_receipts, retention, sweep

if not settings.configured:  # pragma: no cover - loaded by manage.py rqcron
    raise RuntimeError("load through 'manage.py rqcron campaigns.cron'")

cron.register(
    sweep,
    queue_name=app_settings.QUEUE,
    interval=app_settings.SWEEP_INTERVAL,
    job_timeout=600,
    result_ttl=60,
    name="notifier-sweep",
)

cron.register(
    push_receipts,
    queue_name=app_settings.QUEUE,
    interval=app_settings.PUSH_RECEIPT_INTERVAL,
    job_timeout=600,
    result_ttl=60,
    name="notifier-push-receipts",
)

cron.register(
    retention,
    queue_name=app_settings.BULK_QUEUE,  # behind transactional work, like other bulk jobs
    interval=3600,
    job_timeout=3600,
    result_ttl=600,
    name="notifier-retention",
)
