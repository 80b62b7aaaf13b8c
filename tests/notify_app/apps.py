from django.apps import AppConfig


class NotifyAppConfig(AppConfig):
    name = "tests.notify_app"
    label = "notify_app"
