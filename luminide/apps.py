from django.apps import AppConfig


class LuminideConfig(AppConfig):
    name = "luminide"
    verbose_name = "Workspace"
