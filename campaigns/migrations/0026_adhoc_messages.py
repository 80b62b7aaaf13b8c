"""Ad-hoc messages (``notify_text()``): the built-in event their rows belong to, and the
permission to send one from a person's timeline (granted to Support by the roles'
``post_migrate`` handler)."""

from django.db import migrations


def adhoc_event_create(apps, schema_editor):
    Event = apps.get_model("campaigns", "Event")
    Event.objects.get_or_create(
        key="adhoc",
        defaults={
            "name": "Ad-hoc message",
            "description": "A text written by a person (notify_text(), the support desk's "
            "Send a message), sent without a template.",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0025_retention"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="message",
            options={
                "ordering": ["-id"],
                "permissions": [("send_message", "Can send an ad-hoc message to a person")],
            },
        ),
        migrations.RunPython(adhoc_event_create, migrations.RunPython.noop),
    ]
