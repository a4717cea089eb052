from django.apps import AppConfig


class DrAddonConfig(AppConfig):
    name = "dr_addon"
    verbose_name = "Disaster recovery"

    def ready(self):
        from dr_addon import runbooks  # noqa: F401  (registers the DR runbooks)
        from dr_addon.services import DrAddOnHooks
        from plans.models import AddOnKind
        from provisioning import addons

        # The subscription lifecycle calls these at its fixed points (provisioning.addons).
        addons.register(AddOnKind.DR, DrAddOnHooks())
