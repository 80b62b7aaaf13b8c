"""The operator roles: the Marketing and Support groups and their permissions.

Made by migration 0008 and kept by a ``post_migrate`` handler (so a database flushed by
tests, or a deleted group, gets them back). Superusers need no group.
"""

from __future__ import annotations

from django.db.models import Q

#: group name -> {app_label: {model: [actions]}}; "send_test", "run_campaign",
#: "publish_template", "publish_layout" and "send_message" (an ad-hoc message to a person,
#: from their timeline) are permissions of their own. Marketing writes,
#: publishes and rolls back content; Support may look at it and send tests, not change it.
ROLES: dict[str, dict[str, dict[str, list[str]]]] = {
    "Marketing": {
        "campaigns": {
            "event": ["view", "add", "change"],
            "template": ["view", "add", "change", "delete", "send_test", "publish_template"],
            "layout": ["view", "add", "change", "delete", "publish_layout"],
            "partial": ["view", "add", "change", "delete"],
            "availabilitywindow": ["view", "add", "change", "delete"],
            "escalationstep": ["view", "add", "change", "delete"],
            "audience": ["view", "add", "change", "delete"],
            "contact": ["view", "add", "change", "delete"],
            "campaign": ["view", "add", "change", "delete", "run_campaign"],
        },
        "channels": {"channelconfig": ["view"]},
    },
    "Support": {
        "campaigns": {
            "message": ["view", "change", "send_message"],
            "optout": ["view", "add", "change", "delete"],
            "digestpreference": ["view", "change"],
            "digestitem": ["view"],
            "channeladdress": ["view", "change"],
            "recipientprofile": ["view", "change"],
            "event": ["view"],
            "escalationstep": ["view"],
            "template": ["view", "send_test"],
            "layout": ["view"],
            "partial": ["view"],
            "campaign": ["view"],
            # The status webhooks' delivery log, to answer "did our system hear of it?".
            "webhookendpoint": ["view"],
            "webhookdelivery": ["view"],
            "webhookattempt": ["view"],
        },
    },
}
#: No role is granted service API keys (``servicekey``) nor changes to webhook endpoints:
#: a key acts for no person and may send to anyone, and an endpoint sends message data out
#: of the site, so only superusers make them.


#: Permissions of their own (not view/add/change/delete of a model).
CUSTOM = {"send_test", "run_campaign", "publish_template", "publish_layout", "send_message"}


def _codename(action: str, model: str) -> str:
    return action if action in CUSTOM else f"{action}_{model}"


def roles_ensure(*, group_model, permission_model) -> None:
    """Create the groups and grant their permissions (idempotent). Takes the models so a
    migration can pass its historical ones; permissions of models a migration does not know
    yet are granted by the ``post_migrate`` run."""
    for name, grants in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        wanted = Q()
        for app_label, models in grants.items():
            for model, actions in models.items():
                wanted |= Q(
                    content_type__app_label=app_label,
                    content_type__model=model,
                    codename__in=[_codename(action, model) for action in actions],
                )
        group.permissions.add(*permission_model.objects.filter(wanted))
