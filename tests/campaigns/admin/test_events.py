"""The events admin: template coverage per channel and language, and the windows summary."""

from __future__ import annotations

import datetime as dt

from campaigns.models import AvailabilityWindow
from tests import factories


def test_coverage_grid_shows_missing_templates(admin_client, db):
    memory = factories.memory_channel()
    event = factories.EventFactory(key="order-shipped")
    factories.TemplateFactory(event=event, channel=memory, language="en")
    factories.TemplateFactory(event=event, channel=memory, language="de", is_active=False)
    html = admin_client.get(f"/admin/campaigns/event/{event.pk}/change/").content.decode()
    assert 'data-coverage="memory/en" data-state="current"' in html
    assert 'data-coverage="memory/de" data-state="inactive"' in html
    assert 'data-coverage="memory/fr" data-state="missing"' in html
    assert 'data-coverage="email/en" data-state="missing"' in html  # no template there yet
    assert f"?event={event.pk}&amp;channel={memory.pk}&amp;language=fr" in html


def test_events_list_summarises_templates_and_windows(admin_client, db):
    memory = factories.memory_channel()
    event = factories.EventFactory(key="order-shipped")
    factories.TemplateFactory(event=event, channel=memory, language="en")
    factories.TemplateFactory(event=event, channel=memory, language="de")
    AvailabilityWindow.objects.create(
        event=event, weekdays=[0, 1, 2, 3, 4], start_time=dt.time(9), end_time=dt.time(18)
    )
    html = admin_client.get("/admin/campaigns/event/").content.decode()
    assert "memory: de, en" in html
    dash = "\u2013"
    assert f"Mon{dash}Fri 09:00{dash}18:00 in the recipient&#x27;s time" in html


def test_the_add_link_prefills_the_template_form(admin_client, db):
    memory = factories.memory_channel()
    event = factories.EventFactory(key="order-shipped")
    url = f"/admin/campaigns/template/add/?event={event.pk}&channel={memory.pk}&language=fr"
    html = admin_client.get(url).content.decode()
    assert 'name="language" value="fr"' in html


def test_events_list_shows_variables_with_label_help_and_sample(admin_client, db):
    factories.EventFactory(
        key="order-shipped",
        variables=[
            {
                "name": "order_id",
                "label": "Order",
                "help": "The <b>order</b> number",
                "sample": "A-1",
            }
        ],
    )
    html = admin_client.get("/admin/campaigns/event/").content.decode()
    assert "<code>order_id</code> Order" in html and "e.g. A-1" in html
    assert 'title="The &lt;b&gt;order&lt;/b&gt; number"' in html
