from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "Provisioning"

    def ready(self):
        # Registers the runbooks and their event triggers (the explicit event table).
        from provisioning import runbooks  # noqa: F401
