"""Browser fixtures: Playwright's sync API driving Debian's chromium against ``live_server``.

Playwright's sync API keeps an asyncio loop running in this thread while it is started, and
Django refuses synchronous ORM calls from a thread with a running loop. The tests create
their data before opening pages, and the loop never runs Django code, so the check is turned
off (DJANGO_ALLOW_ASYNC_UNSAFE) — but only while Playwright runs: the ``browser`` fixture is
scoped to this package and restores the environment when it stops, so the rest of the suite
keeps Django's check (and a loop-free thread for ``async_to_sync`` / ``asyncio.run``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
# Wider than 1280 px: below that unfold folds the sidebar away.
VIEWPORT = {"width": 1440, "height": 900}


@pytest.fixture(scope="package")
def browser() -> Iterator:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as env:
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser_ = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield browser_
            finally:
                browser_.close()


# Reported by the page itself too: Chromium's own console line does not name the source line.
CSP_LISTENER = """document.addEventListener("securitypolicyviolation", (e) => console.error(
  `CSP violation: ${e.violatedDirective} refused ${e.blockedURI || "inline code"} `
  + `at ${e.sourceFile}:${e.lineNumber} (${e.sample})`));"""


def watch_csp(context) -> list[str]:
    """Collects every Content-Security-Policy violation the context's pages report on their
    console (``page.on("console")``), for the test to assert there are none."""
    violations: list[str] = []

    def on_console(message) -> None:
        text = message.text
        if message.type == "error" and (
            "Content Security Policy" in text or text.startswith("CSP violation")
        ):
            violations.append(f"{message.location.get('url', '')}: {text}")

    context.add_init_script(CSP_LISTENER)
    context.on("console", on_console)
    return violations


def keep_local(context, base_url: str) -> None:
    """Requests for anything but the live server (an email's web fonts from the template
    preview, say) fail at once instead of leaving the machine."""
    origin = base_url.rstrip("/")

    def elsewhere(url: str) -> bool:
        return not (url.startswith((origin + "/", "data:", "blob:", "about:")) or url == origin)

    context.route(elsewhere, lambda route: route.abort())


@pytest.fixture
def page(browser, live_server, transactional_db) -> Iterator:
    """A fresh context (no cookies) per test; ``page.goto("/admin/")`` is relative to the
    live server. A page that reports a Content-Security-Policy violation fails the test."""
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    violations = watch_csp(context)
    keep_local(context, live_server.url)
    page_ = context.new_page()
    try:
        yield page_
    finally:
        context.close()
    assert violations == [], "Content-Security-Policy violations:\n" + "\n".join(violations)


def login(page, username: str, password: str) -> None:
    """Sign in through the admin's login form, as a person would."""
    page.goto("/admin/login/?next=/admin/")
    page.locator("#login-form input[name=username]").fill(username)
    page.locator("#login-form input[name=password]").fill(password)
    with page.expect_navigation():
        page.locator("#login-form [type=submit]").click()
    if "/admin/login/" in page.url:
        raise AssertionError(f"login as {username!r} failed: {page.locator('body').inner_text()}")


@pytest.fixture
def admin_login():
    """The helper ``admin_login(page, username, password)``: signs in through the login form."""
    return login
