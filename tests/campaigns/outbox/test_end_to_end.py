from campaigns.api import notify
from channels.backends import locmem
from tests import factories


def test_notify_then_worker_sends(transactional_db, run_worker):
    channel = factories.memory_channel()
    template = factories.TemplateFactory(channel=channel)
    result = notify(
        template.event.key, {"email": "a@example.com", "name": "Ann"}, {"order_id": "7"}
    )
    assert run_worker() == 1
    assert [o.subject for o in locmem.outbox] == ["Order 7 shipped"]
    result.messages[0].refresh_from_db()
    assert result.messages[0].status == "sent"
