"""The dashboard as a superuser sees it: KPI cards, the chart drawn, the queue card."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from campaigns.api import notify
from campaigns.outbox.sweep import drain
from tests import factories

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"


def test_the_dashboard_shows_delivery_and_the_queue(page, django_user_model, admin_login, tmp_path):
    django_user_model.objects.create_superuser("root", "root@x.io", PASSWORD)
    factories.TemplateFactory(channel=factories.memory_channel(), event__key="order-shipped")
    notify("order-shipped", [{"email": f"p{i}@x.io"} for i in range(4)], {"order_id": "1"})
    drain()
    admin_login(page, "root", PASSWORD)
    page.goto("/admin/")
    expect(page.locator('[data-kpi="sent-24h"]')).to_have_text("4")
    expect(page.locator('[data-kpi="failed-24h"]')).to_have_text("0")
    expect(page.locator('[data-kpi="queue-depth"]')).to_be_visible()
    canvas = page.locator("canvas.chart")
    expect(canvas).to_be_visible()
    assert canvas.bounding_box()["height"] > 100  # Chart.js drew it
    expect(page.get_by_role("cell", name="Memory outbox")).to_be_visible()
    page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
