from django.apps import AppConfig


class DrAddonConfig(AppConfig):
    name = "dr_addon"
    verbose_name = "Disaster recovery"
