from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_after_migrate(sender, using="default", **kwargs):
    from django.contrib.auth.models import Group, Permission

    from campaigns.registry import sync_all
    from campaigns.roles import roles_ensure

    sync_all()
    roles_ensure(group_model=Group, permission_model=Permission)


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from anymail.signals import tracking
        from django.utils.module_loading import autodiscover_modules

        from campaigns import checks  # noqa: F401 - registers the system checks
        from campaigns.tracking.delivery import anymail_tracking_receive

        autodiscover_modules("notifications")
        tracking.connect(anymail_tracking_receive, dispatch_uid="notifier-anymail-tracking")
        post_migrate.connect(_sync_after_migrate, sender=self, dispatch_uid="notifier-sync")
