"""The Celery application: configuration comes from Django settings (``CELERY_*``)."""

import os

from celery import Celery

from portal import worker_process
from portal.worker_queues import STAMP_DRIVERS_OPTION, StampQueues

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("buffet")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Connections are kept between tasks by Django's rules, not closed after each one.
app.conf.CELERY_DB_REUSE_MAX = worker_process.REUSE_MAX
app.autodiscover_tasks()
app.user_options["worker"].add(STAMP_DRIVERS_OPTION)
app.steps["consumer"].add(StampQueues)

__all__ = ["app"]
