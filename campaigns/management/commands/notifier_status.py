"""``manage.py notifier_status``: the readiness checks of ``/readyz`` with their details, the
live workers and cron schedulers, for a terminal; exit status 0 when all pass, 1 otherwise.

``--local worker`` (or ``scheduler``) checks only that a worker (or cron scheduler) of this
host is alive in Redis: the health check of a worker's or the scheduler's container."""

from __future__ import annotations

import socket

from django.core.management.base import BaseCommand, CommandError

from campaigns.conf import app_settings
from campaigns.ops.health import (
    local_process_alive,
    readiness,
    schedulers_alive,
    workers_alive,
)


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument(
            "--local",
            choices=["worker", "scheduler"],
            help="only check that a worker (or cron scheduler) of this host is alive",
        )

    def handle(self, *args, local=None, **options):
        if local:
            host = socket.gethostname()
            try:
                alive = local_process_alive(local)
            except Exception as error:
                raise CommandError(f"cannot tell: {type(error).__name__}: {error}") from None
            if not alive:
                raise CommandError(f"no live {local} of this host ({host}) is registered in Redis")
            self.stdout.write(f"a {local} of this host ({host}) is alive")
            return
        result = readiness()
        width = max(len(check.name) for check in result.checks)
        for check in result.checks:
            mark = "ok  " if check.ok else "FAIL"
            self.stdout.write(f"{mark} {check.name:<{width}}  {check.detail}")
        by_name = {check.name: check for check in result.checks}
        if by_name["redis"].ok:
            for worker in workers_alive():
                self.stdout.write(
                    f"     worker {worker['name']} on {worker['hostname']}: {worker['state']} "
                    f"(queue {app_settings.QUEUE})"
                )
            for scheduler in schedulers_alive():
                self.stdout.write(f"     cron scheduler {scheduler['name']}")
        if not result.ok:
            raise CommandError("not ready: " + ", ".join(c.name for c in result.checks if not c.ok))
        self.stdout.write("ready")
