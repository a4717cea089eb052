from django.apps import AppConfig


class DrAddonConfig(AppConfig):
    name = "dr_addon"
    verbose_name = "Disaster recovery"

    def ready(self):
        # Registers the DR runbooks and the event handlers of the add-on.
        from dr_addon import runbooks, services  # noqa: F401
