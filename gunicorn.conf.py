"""Gunicorn's settings for the web process, each from the environment (README "Running in
production"). Gunicorn reads this file from its working directory:
``gunicorn notifier_site.wsgi`` in the project's root (the image's WORKDIR)."""

import os

bind = [f"{os.environ.get('WEB_BIND', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"]  # noqa: S104 - a container's port
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))  # processes; about one per core
threads = int(os.environ.get("WEB_THREADS", "4"))  # threads per process (gthread worker)
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))  # a request running longer is killed
graceful_timeout = 30  # on SIGTERM, requests in flight get this long to finish
# A process is replaced after about this many requests, which bounds slow memory growth.
max_requests = 2000
max_requests_jitter = 200
# The heartbeat file in memory, not on a container's overlay disk (which can stall).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG", "0") == "1" else None
# Proxies whose X-Forwarded-* headers gunicorn believes (Django's own settings decide the rest).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
