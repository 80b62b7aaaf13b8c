"""The migration that gave templates versions: each existing template becomes its first
published version, as it was, and each existing message points at it (a backfill in batches,
each committed on its own)."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [
    ("campaigns", "0021_fewer_message_index_writes"),
    ("channels", "0004_encrypt_channel_secrets"),
]
AFTER = [("campaigns", "0022_template_versions")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def at_0021(transactional_db):
    apps = migrate(BEFORE)
    try:
        yield apps
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_each_template_becomes_its_first_version_and_messages_point_at_it(at_0021, monkeypatch):
    apps = at_0021
    Event = apps.get_model("campaigns", "Event")
    Template = apps.get_model("campaigns", "Template")
    Message = apps.get_model("campaigns", "Message")
    Channel = apps.get_model("channels", "ChannelConfig")
    channel = Channel.objects.create(
        key="mail", name="Mail", backend="channels.backends.locmem.LocmemBackend"
    )
    event = Event.objects.create(key="order-shipped", name="Order shipped")
    templates = [
        Template.objects.create(
            event=event,
            channel=channel,
            language=language,
            subject=f"[{language}] {{{{ order_id }}}}",
            text_body="Hello",
            html_body="<p>Hi</p>",
            version=7,
        )
        for language in ("en", "de")
    ]
    now = timezone.now()
    messages = [
        Message.objects.create(
            event=event,
            channel=channel,
            template=templates[n % 2] if n < 5 else None,  # one whose template was deleted
            address=f"m{n}@x.io",
            status="scheduled",
            created_at=now,
        )
        for n in range(6)
    ]
    module = importlib.import_module("campaigns.migrations.0022_template_versions")
    monkeypatch.setattr(module, "BATCH", 2)  # three batches for six messages

    apps = migrate(AFTER)

    Template = apps.get_model("campaigns", "Template")
    Message = apps.get_model("campaigns", "Message")
    for template in Template.objects.select_related("published"):
        version = template.published
        assert (version.number, version.template_id) == (1, template.pk)
        assert (version.subject, version.text_body, version.html_body) == (
            template.subject,
            template.text_body,
            template.html_body,
        )
    rows = dict(Message.objects.values_list("pk", "template_version__template_id"))
    assert rows == {m.pk: (templates[n % 2].pk if n < 5 else None) for n, m in enumerate(messages)}
    Permission = apps.get_model("auth", "Permission")
    marketing = apps.get_model("auth", "Group").objects.get(name="Marketing")
    assert (
        marketing.permissions.filter(codename__in=["publish_template", "publish_layout"]).count()
        == 2
    )
    assert not Permission.objects.filter(
        group__name="Support", codename__in=["publish_template", "change_layout", "change_partial"]
    ).exists()


def test_no_migration_depends_on_the_latest_of_another_app():
    """A dependency on ``__latest__`` moves each time that app gains a migration, and a
    database that applied the dependent migration then refuses to migrate at all
    (InconsistentMigrationHistory): every dependency names its migration."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    ours = {"campaigns", "channels"}
    floating = [
        f"{app}.{name} -> {dependency}"
        for (app, name), migration in loader.disk_migrations.items()
        if app in ours
        for dependency in migration.dependencies
        if dependency[1] == "__latest__"
    ]
    assert floating == []
