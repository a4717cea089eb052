"""The periodic work beat runs, kept in django-celery-beat's tables.

``ensure_schedules`` is idempotent: it runs after every ``migrate`` and leaves schedules
a provider edited (enabled flag, interval) alone once they exist.
"""

from django.db import transaction

__all__ = ["SCHEDULES", "ensure_schedules"]

# name -> (task, every N seconds)
SCHEDULES = {
    "Jobs: relay and sweeper": ("provisioning.sweep_jobs", 10),
    "Resources: fail those stuck with no job": ("provisioning.reset_stuck_resources", 300),
    "Stamps: health and capacity": ("provisioning.check_stamps", 60),
    "Stamps: reconciliation": ("provisioning.reconcile", 300),
    "DR: replication syncs due by RPO": ("dr_addon.sync_due", 30),
    "Billing: usage of the last minute": ("billing.collect_usage", 60),
    "Billing: refresh invoice drafts and burst caps": ("billing.refresh_invoices", 300),
}


@transaction.atomic
def ensure_schedules(**_) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for name, (task, seconds) in SCHEDULES.items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        every, _ = IntervalSchedule.objects.get_or_create(every=seconds,
                                                          period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.create(name=name, task=task, interval=every)
