"""The HTTP API's docs page (Swagger UI, from django-ninja's static files) works under the
site's Content-Security-Policy: the ``page`` fixture fails the test on any violation."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_the_api_docs_page_shows_the_operations_under_the_csp(page):
    response = page.goto("/api/v1/docs")

    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.locator(".swagger-ui .info .title").filter(has_text="Notifier API").wait_for()
    page.locator(".opblock-summary-path", has_text="/api/v1/notifications").first.wait_for()
