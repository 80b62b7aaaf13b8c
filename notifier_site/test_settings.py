"""Settings for the test suite: the real settings, pointed at PostgreSQL and a Redis database
index of the suite's own, plus a small app that declares channels and events in code."""

import os
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/notifier")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/11")


def _redis_index_of_this_process(url: str, worker: str) -> str:
    """Under pytest-xdist each worker process (gw0, gw1, …) empties Redis around every test,
    so each gets a database index of its own: the given index plus the worker's number
    (``redis://…/12`` → 12 for gw0, 13 for gw1). pytest-django does the same for PostgreSQL
    (``test_<name>_gw0``)."""
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    index = int(parts.path.strip("/") or 0) + int(worker.removeprefix("gw"))
    if index > 15:
        raise ValueError(f"REDIS_URL {url}: worker {worker} would need Redis database {index}")
    return urlunsplit(parts._replace(path=f"/{index}"))


os.environ["REDIS_URL"] = _redis_index_of_this_process(
    os.environ["REDIS_URL"], os.environ.get("PYTEST_XDIST_WORKER", "")
)
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
# The suite's own Fernet key for channel secrets; worker subprocesses inherit it.
os.environ.setdefault("NOTIFIER_SECRET_KEYS", "dGVzdHMtb25seS1jaGFubmVsLXNlY3JldHMta2V5LTE=")

from notifier_site.settings import *  # noqa: E402, F403 - after the environment is set
from notifier_site.settings import INSTALLED_APPS, NOTIFIER  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.notify_app"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
NOTIFIER = {**NOTIFIER, "RETRY_DELAY": 0, "RETRY_JITTER": 0, "WEBHOOK_ALLOW_PRIVATE": True}
# The suite runs no collectstatic: WhiteNoise looks for files as they are asked for, instead
# of listing STATIC_ROOT at startup (and warning that it does not exist).
WHITENOISE_AUTOREFRESH = True
