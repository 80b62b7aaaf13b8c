"""Production hardening comes from the environment: with a production-like environment
`manage.py check --deploy` finds nothing, and the development defaults (what `make run`
sets) still serve plain http."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time

import httpx
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from tests.conftest import ROOT, free_port, output, subprocess_env

SECURITY_VARIABLES = (
    "DEBUG",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
    "USE_X_FORWARDED_HOST",
    "NOTIFIER_TRUSTED_PROXY_COUNT",
)


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in subprocess_env().items() if k not in SECURITY_VARIABLES}
    return env | values


def test_check_deploy_is_clean_with_a_production_environment(db):
    env = clean_env(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="notify.example.com",
        CSRF_TRUSTED_ORIGINS="https://notify.example.com",
        SITE_URL="https://notify.example.com",
        EMAIL_URL="smtp://notifier:secret@mail.example.com:587/?tls=1",
        SECURE_SSL_REDIRECT="1",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        SECURE_HSTS_PRELOAD="1",
        SESSION_COOKIE_SECURE="1",
        CSRF_COOKIE_SECURE="1",
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert "System check identified no issues" in said, said
    assert "WARNING" not in said, said


def test_without_the_https_settings_check_deploy_names_them(db):
    env = clean_env(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        EMAIL_URL="smtp://mail.example.com:587/?tls=1",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = result.stdout + result.stderr
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in said, said


def test_the_development_defaults_serve_plain_http(
    transactional_db, django_user_model, tmp_path, close_db_after
):
    # Hashed as the site's own settings can check (the suite's settings hash with MD5).
    password = PBKDF2PasswordHasher().encode("pw-ann-123", "somesalt", iterations=1000)
    django_user_model.objects.create(username="ann", password=password)
    port = free_port()
    log = open(tmp_path / "runserver.log", "w+b")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=clean_env(DEBUG="1"),  # what `make run` sets (scripts/run.sh)
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server.log = log
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/accounts/login/", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, output(server)
                time.sleep(0.1)
        with httpx.Client(base_url=base) as browser:
            page = browser.get("/accounts/login/")
            assert page.status_code == 200  # not a redirect to https
            assert "secure" not in page.headers["set-cookie"].lower()
            assert "strict-transport-security" not in page.headers
            login = browser.post(
                "/accounts/login/",
                data={
                    "username": "ann",
                    "password": "pw-ann-123",
                    "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                },
            )
            assert login.status_code == 302, login.text[:2000]
            assert login.headers["location"] == "/inbox/"
            assert "secure" not in login.headers["set-cookie"].lower()
            assert browser.get("/inbox/").status_code == 200  # the session cookie came back
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
