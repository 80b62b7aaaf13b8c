"""Signal receivers, connected by ``CampaignsConfig.ready()``: the declarations and roles are
written after every ``migrate``, and ESP tracking events (django-anymail) are recorded."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

from campaigns.registry import sync_all
from campaigns.roles import roles_ensure
from campaigns.tracking.delivery import anymail_tracking_receive

__all__ = ["anymail_tracking_receive", "sync_after_migrate"]


def sync_after_migrate(sender, using="default", **kwargs) -> None:
    sync_all()
    roles_ensure(group_model=Group, permission_model=Permission)
