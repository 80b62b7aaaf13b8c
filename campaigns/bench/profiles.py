"""``manage.py bench --profile``: where the CPU time of the hot paths goes, as cProfile's top
15 by cumulative time: ``notify()`` for one recipient (200 calls), the dispatch of one
500-message batch in-process (null backend), and building one email (500 builds)."""

from __future__ import annotations

import cProfile
import email
import io
import pstats
import time
import uuid
from pathlib import Path

import django
from django.conf import settings

from campaigns.api import notify
from campaigns.models import Message

from . import adapter, mail
from .base import ORDER_CONTEXT, Bench, BenchError, bench_user
from .trigger import EVENT, fixtures

TOP = 15
#: Notifier's own modules, as a pstats restriction (a regular expression on the path).
OWN = r"/(campaigns|channels)/(?!bench/)"
#: Path prefixes left out of the printed tables.
PREFIXES = (
    f"{Path(settings.BASE_DIR)}/",
    f"{Path(django.__file__).parent.parent}/",
    f"{Path(email.__file__).parent.parent}/",
)


def _print(bench: Bench, title: str, profile: cProfile.Profile) -> None:
    """The top by cumulative time, then the top of Notifier's own functions; paths are
    shortened to the package."""
    for heading, restriction in (("all", ()), ("Notifier's own code", (OWN,))):
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("cumulative").print_stats(*restriction, TOP)
        text = out.getvalue().strip()
        for prefix in sorted(PREFIXES, key=len, reverse=True):
            text = text.replace(prefix, "")
        bench.write(f"== profile: {title} ({heading}; CPU time of this process)")
        bench.write(text)
        bench.write("")


def _profile() -> cProfile.Profile:
    """A profile in this process's CPU time: on a shared machine, wall time would mostly
    show how long the database and the scheduler kept it waiting (the database's own CPU is
    a figure of ``delivery``)."""
    return cProfile.Profile(time.process_time)


def run(bench: Bench) -> None:
    fixtures()
    user = bench_user()
    for _ in range(5):
        notify(EVENT, user, ORDER_CONTEXT)
    profile = _profile()
    profile.enable()
    for _ in range(200):
        notify(EVENT, user, ORDER_CONTEXT)
    profile.disable()
    _print(bench, "notify() to one user, 200 calls", profile)

    people = [{"email": f"p{i}@bench.example", "name": f"Reader {i}"} for i in range(505)]
    result = notify(EVENT, people, ORDER_CONTEXT)
    bench.queue_empty()
    ids = [m.pk for m in result.messages]
    adapter.dispatch(ids[:5])  # warm: templates compiled, backend imported
    profile = _profile()
    profile.enable()
    adapter.dispatch(ids[5:])
    profile.disable()
    if Message.objects.filter(pk__in=ids, status="sent").count() != len(ids):
        raise BenchError("the profiled dispatch did not send every message")
    _print(bench, "dispatch of one 500-message batch in-process (null backend)", profile)

    backend = adapter.email_backend({"from_email": mail.FROM})
    message = adapter.outgoing(
        uuid=str(uuid.uuid4()),
        address="erika@bench.example",
        unsubscribe_url="https://notify.bench.example/unsubscribe/token/",
        **mail.rendered_example(),
    )
    adapter.email_bytes(backend, message)
    profile = _profile()
    profile.enable()
    for _ in range(500):
        adapter.email_bytes(backend, message)
    profile.disable()
    _print(bench, "building one text + HTML email, 500 builds", profile)
