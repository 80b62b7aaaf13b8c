"""Settings for the test suite: the real settings, pointed at PostgreSQL and a Redis database
index of the suite's own, plus a small app that declares channels and events in code."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/notifier")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/11")
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
# The suite's own Fernet key for channel secrets; worker subprocesses inherit it.
os.environ.setdefault("NOTIFIER_SECRET_KEYS", "dGVzdHMtb25seS1jaGFubmVsLXNlY3JldHMta2V5LTE=")

from notifier_site.settings import *  # noqa: F403
from notifier_site.settings import INSTALLED_APPS, NOTIFIER

INSTALLED_APPS = [*INSTALLED_APPS, "tests.notify_app"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
NOTIFIER = {**NOTIFIER, "RETRY_DELAY": 0, "RETRY_JITTER": 0, "WEBHOOK_ALLOW_PRIVATE": True}
# The suite runs no collectstatic: WhiteNoise looks for files as they are asked for, instead
# of listing STATIC_ROOT at startup (and warning that it does not exist).
WHITENOISE_AUTOREFRESH = True
