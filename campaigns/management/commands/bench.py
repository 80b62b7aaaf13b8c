"""``manage.py bench``: every figure of the issue "Speed of the everyday path", each with its
ratio to its target, in one run (README, "Benchmarks").

    manage.py bench                       # everything, at the issue's sizes (minutes)
    manage.py bench --quick               # everything, small (well under a minute)
    manage.py bench --only floor,campaign --recipients 20000 --rounds 3
    manage.py bench --profile             # where the time of the hot paths goes

Run it on a database and a Redis index of its own: it refuses a database holding messages
that are not its own, a queue holding jobs, and a queue other workers listen on (``--force``
runs anyway). Everything it creates is removed at the end, also after a failure or Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import time
import traceback
from collections import defaultdict

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from rq import Worker

from campaigns.bench import (
    adapter,
    campaign,
    delivery,
    floor,
    imports,
    mail,
    priority,
    profiles,
    trigger,
)
from campaigns.bench.base import Bench, Figure, Options, Skip, foreign_messages, median

SCENARIOS = {
    "floor": floor.run,
    "trigger": trigger.run,
    "delivery": delivery.run,
    "priority": priority.run,
    "campaign": campaign.run,
    "email": mail.run,
    "import": imports.run,
}


def _stop(signum, frame):
    """SIGTERM and SIGHUP end the run as Ctrl-C does: through the cleanup."""
    raise KeyboardInterrupt(f"signal {signum}")


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument(
            "--only",
            default="",
            help=f"comma-separated scenarios (default: all): {', '.join(SCENARIOS)}",
        )
        parser.add_argument(
            "--quick", action="store_true", help="small sizes: every scenario in seconds"
        )
        parser.add_argument(
            "--recipients", type=int, help="messages of the floor, the campaign and priority"
        )
        parser.add_argument("--workers", type=int, help="worker processes (default 2)")
        parser.add_argument("--rounds", type=int, help="run everything this many times")
        parser.add_argument("--calls", type=int, help="trigger: notify() calls timed")
        parser.add_argument("--fanout", type=int, help="trigger: recipients of one call")
        parser.add_argument("--dispatch", type=int, help="delivery: messages sent in-process")
        parser.add_argument("--deliveries", type=int, help="delivery: one-recipient calls")
        parser.add_argument(
            "--latency-samples", type=int, help="delivery: single calls on idle workers"
        )
        parser.add_argument("--emails", type=int, help="email: messages to the SMTP sink")
        parser.add_argument("--import-rows", type=int, help="import: rows of the CSV file")
        parser.add_argument("--no-sqlite", action="store_true", help="trigger: skip SQLite")
        parser.add_argument("--timeout", type=float, help="give up on a wait after (s)")
        parser.add_argument(
            "--force",
            action="store_true",
            help="run on a database with other messages, or a busy queue",
        )
        parser.add_argument(
            "--profile",
            action="store_true",
            help="print cProfile's top 15 of notify(), a 500-message dispatch and an email "
            "build instead of the figures",
        )
        # Internal: trigger + send on SQLite in memory, run by the trigger scenario in a
        # process of its own; prints its figures as JSON.
        parser.add_argument("--sqlite-child", action="store_true", help="==SUPPRESS==")

    def handle(self, *args, **opts):
        options = Options.build(
            quick=opts["quick"],
            recipients=opts["recipients"],
            workers=opts["workers"],
            rounds=opts["rounds"],
            calls=opts["calls"],
            fanout=opts["fanout"],
            dispatch=opts["dispatch"],
            deliveries=opts["deliveries"],
            latency_samples=opts["latency_samples"],
            emails=opts["emails"],
            import_rows=opts["import_rows"],
            sqlite=False if opts["no_sqlite"] else None,
            timeout=opts["timeout"],
        )
        for name in ("recipients", "workers", "rounds", "calls", "fanout", "emails"):
            if getattr(options, name) < 1:
                raise CommandError(f"--{name} must be at least 1")
        if opts["sqlite_child"]:
            self.stdout.write(json.dumps(trigger.sqlite_child(options)))
            return
        chosen = [name.strip() for name in opts["only"].split(",") if name.strip()]
        unknown = [name for name in chosen if name not in SCENARIOS]
        if unknown:
            raise CommandError(
                f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}"
            )
        if connection.vendor != "postgresql":
            raise CommandError(
                "the benchmark measures PostgreSQL: set DATABASE_URL=postgres://… (a database "
                "of its own)"
            )
        if not opts["force"]:
            self.refuse_busy()
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
        bench = Bench(options, self.stdout.write)
        failed: list[str] = []
        interrupted = False
        try:
            bench.reset()  # what a run killed beyond cleanup (SIGKILL) may have left
            if opts["profile"]:
                profiles.run(bench)
                return
            self.stdout.write(self.header(options))
            if settings.DEBUG:
                bench.note(
                    "DEBUG is on: Django keeps every query, so CPU figures run higher than in "
                    "production (unset DEBUG and set SECRET_KEY to measure without it)"
                )
            for number in range(1, options.rounds + 1):
                bench.round = number
                for name in chosen or SCENARIOS:
                    self.stdout.write(f"== {name}" + (f" (round {number})" * (options.rounds > 1)))
                    started = time.monotonic()
                    try:
                        SCENARIOS[name](bench)
                    except Skip as why:
                        bench.note(f"skipped: {why}")
                    except Exception:
                        failed.append(name)
                        self.stderr.write(f"{name} failed:\n{traceback.format_exc()}")
                    finally:
                        bench.reset()
                        bench.note(f"{name}: {time.monotonic() - started:.1f} s")
            self.summary(bench.figures, options.rounds)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bench.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if interrupted:
            raise CommandError("interrupted; what the run had created is removed", returncode=130)
        if failed:
            raise CommandError(f"scenario(s) failed: {', '.join(failed)}")

    def refuse_busy(self) -> None:
        others = foreign_messages()
        if others:
            raise CommandError(
                f"this database holds {others} message(s) that are not the benchmark's: run "
                "it on a database of its own (DATABASE_URL), or pass --force"
            )
        queue = adapter.queue()
        if queue.count:
            raise CommandError(
                f"the queue {queue.name!r} holds {queue.count} job(s): run the benchmark on an "
                "idle queue (a Redis index of its own, REDIS_URL), or pass --force"
            )
        listening = Worker.all(connection=queue.connection, queue=queue)
        if listening:
            raise CommandError(
                f"{len(listening)} worker(s) listen on the queue {queue.name!r}: they would "
                "take the benchmark's jobs; stop them, use a Redis index of its own, or pass "
                "--force"
            )

    def header(self, options: Options) -> str:
        db = connection.settings_dict
        return (
            f"bench: PostgreSQL {connection.pg_version // 10000} ({db['NAME']}), "
            f"{options.workers} worker(s), {options.rounds} round(s)"
            + (" — quick sizes" if options.quick else "")
            + "\n"
            + f"{'scenario':<9} {'figure':<26} {'value':>9} {'unit':<8} {'target':<12} "
            + f"{'ratio':>6}  verdict"
        )

    def summary(self, figures: list[Figure], rounds: int) -> None:
        """One line per figure: the median over the rounds of its value and its target."""
        grouped: dict[tuple[str, str], list[Figure]] = defaultdict(list)
        for figure in figures:
            grouped[(figure.scenario, figure.name)].append(figure)
        title = "summary" + (f" (medians of {rounds} rounds)" if rounds > 1 else "")
        self.stdout.write(f"\n{title}")
        width = max((len(f.label) for f in figures), default=10)
        self.stdout.write(
            f"{'figure':<{width}} {'value':>9} {'unit':<8} {'target':<12} {'ratio':>6}  verdict"
        )
        for items in grouped.values():
            first = items[0]
            targets = [f.target for f in items if f.target is not None]
            combined = Figure(
                first.scenario,
                first.name,
                median([f.value for f in items]),
                first.unit,
                first.label,
                median(targets) if targets else None,
                first.sense,
            )
            self.stdout.write(f"{combined.label:<{width}} {combined.columns()}")
