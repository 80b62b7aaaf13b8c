"""``manage.py bench``: every scenario prints its figures, each with a numeric ratio to its
target, and the run leaves nothing behind. The values themselves are not asserted: the
benchmark measures, the tests do not time."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rq import Worker

from campaigns.api import notify
from campaigns.models import Audience, Campaign, Contact, Event, Message
from channels.models import ChannelConfig

from . import factories
from .conftest import ROOT, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

#: One figure line: scenario, figure, value, unit, target, ratio, verdict.
FIGURE = re.compile(
    r"^(?P<scenario>\S+)\s+(?P<name>\S+)\s+(?P<value>\S+)\s+(?P<unit>\S+)\s+"
    r"(?P<target>\S+)\s+(?P<ratio>\S+)\s+(?P<verdict>ok|MISS|ref|info)$"
)
#: Per scenario, the figures the issue asks for: each has a target (or the issue's "before"
#: measurement as reference) and so a ratio.
EXPECTED = {
    "floor": {"current_indexes", "essential_indexes", "none_indexes"},
    "trigger": {
        "notify_user_cpu",
        "notify_user_queries",
        "notify_mapping_cpu",
        "notify_mapping_queries",
        "fanout_cpu_per_msg",
        "sqlite_user_cpu",
        "sqlite_user_queries",
        "sqlite_mapping_cpu",
        "sqlite_mapping_queries",
    },
    "delivery": {"dispatch_cpu_per_msg", "one_batch_client_cpu", "latency_p50", "drain"},
    "priority": {"transactional_p99"},
    "campaign": {"end_to_end", "worker_peak_rss"},
    "email": {
        "build_cpu",
        "end_to_end",
        "share_of_raw",
        "end_to_end_pipelining",
        "share_of_raw_pipelining",
    },
    "import": {"preview", "confirm", "bad_row_reported", "bad_row_skipped"},
}


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "bench", *args],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_a_quick_run_prints_every_scenarios_figures_with_their_ratios_and_cleans_up(
    redis_connection, close_db_after
):
    connection.close()  # the run deletes rows; no idle transaction of ours in its way
    result = bench("--quick")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    lines = result.stdout.splitlines()
    figures = {}
    for line in lines:
        match = FIGURE.match(line)
        if match and match["scenario"] in EXPECTED:
            figures[(match["scenario"], match["name"])] = match

    for scenario, names in EXPECTED.items():
        assert f"== {scenario}" in lines
        for name in names:
            figure = figures.get((scenario, name))
            assert figure is not None, f"{scenario} {name} not printed:\n{result.stdout}"
            assert figure["target"] != "-", figure.group(0)
            assert math.isfinite(float(figure["value"])), figure.group(0)
            assert math.isfinite(float(figure["ratio"])), figure.group(0)
            assert figure["verdict"] in ("ok", "MISS", "ref"), figure.group(0)
    for figure in figures.values():  # informational ones have no target and no ratio
        assert (figure["target"] == "-") == (figure["ratio"] == "-"), figure.group(0)
    summary = lines[lines.index("summary") :]
    assert len([line for line in summary if line.endswith(("ok", "MISS", "ref", "info"))]) == len(
        figures
    )

    # Nothing is left: rows, scratch tables, Redis keys, workers.
    assert not Message.objects.exists()
    assert not Event.objects.filter(key__startswith="bench-").exists()
    assert not ChannelConfig.objects.filter(key__startswith="bench-").exists()
    assert not Campaign.objects.exists()
    assert not Audience.objects.exists()
    assert not Contact.objects.exists()
    assert not get_user_model().objects.filter(username__startswith="bench-").exists()
    assert not [t for t in connection.introspection.table_names() if t.startswith("bench_")]
    assert Worker.all(connection=redis_connection) == []
    assert redis_connection.keys("*") == []


def test_it_refuses_a_database_holding_messages_that_are_not_its_own(close_db_after):
    channel = factories.memory_channel()
    factories.TemplateFactory(event=factories.EventFactory(key="order-shipped"), channel=channel)
    notify("order-shipped", {"email": "ann@example.com"}, {"order_id": "A-1"})
    connection.close()

    result = bench("--only", "import", "--quick", timeout=120)

    assert result.returncode != 0
    assert "holds 1 message(s) that are not the benchmark's" in result.stderr
    assert "--force" in result.stderr
    assert Message.objects.count() == 1  # left alone
    assert not Audience.objects.exists()  # nothing ran
