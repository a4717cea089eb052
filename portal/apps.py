from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from portal.schedules import ensure_schedules

        post_migrate.connect(ensure_schedules, sender=self)
        from portal.bench.urls import ENABLED

        if ENABLED:  # the worker of a benchmark's stack: what ``bench jobs`` runs
            import portal.bench.noop  # noqa: F401
