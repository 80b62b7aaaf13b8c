"""Channel secrets encrypted at rest: ``config`` and ``declared`` become SecretOptionsFields,
and the secrets already stored in clear are encrypted (backwards: decrypted again).

Both directions write with ``QuerySet.update()``, which stores exactly what it is given
(no ``pre_save``), row by row: a site has tens of channels, not thousands."""

from django.db import migrations

import channels.fields
from channels.secrets import options_encrypt


def encrypt_stored_secrets(apps, schema_editor):
    ChannelConfig = apps.get_model("channels", "ChannelConfig")
    rows = ChannelConfig.objects.using(schema_editor.connection.alias)
    for row in rows.order_by("pk"):
        declared = row.declared
        if isinstance(declared, dict) and isinstance(declared.get("config"), dict):
            backend = str(declared.get("backend") or row.backend)
            declared = {**declared, "config": options_encrypt(backend, declared["config"])}
        rows.filter(pk=row.pk).update(
            config=options_encrypt(row.backend, row.config), declared=declared
        )


def decrypt_stored_secrets(apps, schema_editor):
    ChannelConfig = apps.get_model("channels", "ChannelConfig")
    rows = ChannelConfig.objects.using(schema_editor.connection.alias)
    # Reading decrypts (from_db_value); update() writes the clear values back as they are.
    for row in rows.order_by("pk"):
        rows.filter(pk=row.pk).update(config=row.config, declared=row.declared)


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0003_rate_limits"),
    ]

    operations = [
        migrations.AlterField(
            model_name="channelconfig",
            name="config",
            field=channels.fields.SecretOptionsField(
                blank=True,
                default=dict,
                help_text="Options validated by the backend; its secret ones encrypted at rest",
            ),
        ),
        migrations.AlterField(
            model_name="channelconfig",
            name="declared",
            field=channels.fields.SecretOptionsField(
                blank=True,
                default=dict,
                editable=False,
                help_text="The declaration last synced from code; admin edits stand until it "
                "changes",
                nested="config",
            ),
        ),
        migrations.RunPython(encrypt_stored_secrets, decrypt_stored_secrets, elidable=False),
    ]
