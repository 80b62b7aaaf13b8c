from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, as Django asks: these modules need the models loaded.
        from anymail.signals import tracking
        from django.db.models.signals import post_migrate, post_save
        from django.utils.module_loading import autodiscover_modules

        from campaigns import checks  # noqa: F401 - registers the system checks
        from campaigns.integrations.webhooks import (
            failed_receive,
            optout_saved_receive,
            sent_receive,
        )
        from campaigns.models import OptOut
        from campaigns.outbox.catalog import catalog_signals_connect
        from campaigns.receivers import sync_after_migrate
        from campaigns.signals import messages_failed, messages_succeeded
        from campaigns.tracking.delivery import anymail_tracking_receive

        autodiscover_modules("notifications")
        catalog_signals_connect()
        tracking.connect(anymail_tracking_receive, dispatch_uid="notifier-anymail-tracking")
        post_migrate.connect(sync_after_migrate, sender=self, dispatch_uid="notifier-sync")
        # Status webhooks: once per dispatched batch, and on every new opt-out.
        messages_succeeded.connect(sent_receive, dispatch_uid="notifier-webhooks-sent")
        messages_failed.connect(failed_receive, dispatch_uid="notifier-webhooks-failed")
        post_save.connect(
            optout_saved_receive, sender=OptOut, dispatch_uid="notifier-webhooks-optout"
        )
