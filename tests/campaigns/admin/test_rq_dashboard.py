"""django-rq's dashboard empties queues, deletes and requeues jobs: only superusers may see
or use any of its pages, wherever it is mounted."""

from __future__ import annotations

import django_rq
import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, reverse
from django_rq import urls as rq_urls
from django_rq.settings import get_queues_list
from rq import SimpleWorker

from campaigns.conf import app_settings

pytestmark = pytest.mark.django_db

MOUNT = "/django-rq/"
# Where django-rq's admin integration (RQ_SHOW_ADMIN_LINK) would put the same views.
ADMIN_MOUNT = "/admin/django_rq/dashboard/"
JOBS = 6


@pytest.fixture
def queue(redis_connection):
    """The notifier queue with JOBS jobs, and a worker registered on it (not working)."""
    queue = django_rq.get_queue(app_settings.QUEUE)
    for _ in range(JOBS):
        queue.enqueue("campaigns.jobs.dispatch", [])
    worker = SimpleWorker([queue], connection=redis_connection)
    worker.register_birth()
    queue.worker_key = worker.key
    yield queue
    worker.register_death()


def sample_kwargs(
    pattern: URLPattern, *, queue_index: int, job_id: str, worker_key: str
) -> dict[str, object]:
    """Values for each of the pattern's parameters: the test's queue, one of its jobs, its
    worker."""
    names = list(pattern.pattern.converters) or list(pattern.pattern.regex.groupindex)
    values = {
        "queue_index": queue_index,
        "job_id": job_id,
        "connection_index": 0,
        "scheduler_index": 0,
        "key": worker_key,
    }
    return {name: values.get(name, "x") for name in names}


def queue_index() -> int:
    return next(i for i, q in enumerate(get_queues_list()) if q["name"] == app_settings.QUEUE)


def dashboard_paths(queue) -> list[str]:
    """Every URL pattern of django_rq.urls (not a hand-picked list), as a path under MOUNT."""
    job_id = queue.job_ids[0]
    paths = []
    for pattern in rq_urls.urlpatterns:
        assert isinstance(pattern, URLPattern), f"django_rq.urls includes {pattern!r}"
        kwargs = sample_kwargs(
            pattern, queue_index=queue_index(), job_id=job_id, worker_key=queue.worker_key
        )
        paths.append(reverse(f"django_rq:{pattern.name}", kwargs=kwargs))
    assert len(paths) == len(rq_urls.urlpatterns) >= 20
    assert all(p.startswith(MOUNT) for p in paths)
    return paths


def staff(django_user_model, name: str, group: str | None) -> Client:
    user = django_user_model.objects.create_user(name, f"{name}@x.io", "pw", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


def test_only_superusers_see_or_use_any_dashboard_page(queue, django_user_model):
    paths = dashboard_paths(queue)
    job = queue.job_ids[0]
    clients = {
        "anonymous": Client(),
        "Marketing": staff(django_user_model, "mia", "Marketing"),
        "Support": staff(django_user_model, "sam", "Support"),
        "staff": staff(django_user_model, "clerk", None),
    }
    form = {"action": "delete", "job_ids": [job], "confirm": "yes"}
    for who, client in clients.items():
        for path in paths + [ADMIN_MOUNT + p.removeprefix(MOUNT) for p in paths]:
            for method in ("get", "post"):
                response = getattr(client, method)(path, form if method == "post" else None)
                refused = response.status_code in (401, 403, 404) or (
                    who == "anonymous"
                    and response.status_code == 302
                    and "/login/" in response["Location"]
                )
                assert refused, f"{who} {method.upper()} {path}: {response.status_code}"
                assert f"{job}" not in response.content.decode(), (who, path)
        assert queue.count == JOBS, f"{who} changed the queue"
        assert queue.fetch_job(job) is not None


def test_superusers_see_and_use_the_dashboard(queue, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@x.io", "pw")
    client = Client(raise_request_exception=False)
    client.force_login(root)
    for path in dashboard_paths(queue):
        response = client.get(path)
        # 404: no result "x", or a page of rq-scheduler, which is not installed (RQ's own
        # cron scheduler runs the sweep); 405: a POST-only action; 302: back to the queue
        expected = (404,) if path.startswith(f"{MOUNT}schedulers/") else (200, 302, 404, 405)
        assert response.status_code in expected, (path, response.status_code)
        assert "/login/" not in response.get("Location", ""), path
    assert client.get(MOUNT).status_code == 200
    assert client.get(f"{MOUNT}queues/{queue_index()}/").status_code == 200
    response = client.post(f"{MOUNT}queues/{queue_index()}/empty/")
    assert response.status_code == 302
    assert queue.count == 0
