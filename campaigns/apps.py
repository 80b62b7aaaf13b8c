from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, as Django asks: these modules need the models loaded.
        from anymail.signals import tracking
        from django.db.models.signals import post_migrate
        from django.utils.module_loading import autodiscover_modules

        from campaigns import checks  # noqa: F401 - registers the system checks
        from campaigns.outbox.catalog import catalog_signals_connect
        from campaigns.receivers import sync_after_migrate
        from campaigns.tracking.delivery import anymail_tracking_receive

        autodiscover_modules("notifications")
        catalog_signals_connect()
        tracking.connect(anymail_tracking_receive, dispatch_uid="notifier-anymail-tracking")
        post_migrate.connect(sync_after_migrate, sender=self, dispatch_uid="notifier-sync")
