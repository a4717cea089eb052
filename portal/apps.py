from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from django.apps import apps

        from portal.schedules import ensure_schedules

        # After beat's own tables are migrated. ``migrate`` sends post_migrate only for
        # apps with models, which this one has none of: connected to itself, the
        # schedules were never written.
        post_migrate.connect(ensure_schedules, sender=apps.get_app_config("django_celery_beat"))
        from portal.bench.urls import ENABLED

        if ENABLED:  # the worker of a benchmark's stack: what ``bench jobs`` runs
            import portal.bench.noop  # noqa: F401
