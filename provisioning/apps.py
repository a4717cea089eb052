from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "Provisioning"

    def ready(self):
        from provisioning import runbooks  # noqa: F401  (registers the runbooks Buffet ships)
        from provisioning.tasks_menu import runbooks as task_runbooks  # noqa: F401
