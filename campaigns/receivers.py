"""The ``post_migrate`` receiver, connected by ``CampaignsConfig.ready()``: the declarations
and roles are written after every ``migrate``."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

from campaigns.registry import sync_all
from campaigns.roles import roles_ensure


def sync_after_migrate(sender, using="default", **kwargs) -> None:
    sync_all()
    roles_ensure(group_model=Group, permission_model=Permission)
