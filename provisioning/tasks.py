"""Celery entry points. Thin: they take IDs and call the engine or a service.

``provisioning.run_job``, the task that delivers a job, lives with the engine
(``provisioning.engine.delivery``) so that the engine never imports this module.
"""

from celery import shared_task

from provisioning import engine, stuck
from provisioning.engine.delivery import run_job

__all__ = ["check_stamps", "reconcile", "reset_stuck_resources", "run_job", "run_runbook",
           "sweep_jobs"]


@shared_task(name="provisioning.sweep_jobs", ignore_result=True)
def sweep_jobs() -> dict:
    report = engine.sweep()
    return {"published": report.published, "resumed": report.resumed, "stuck": report.stuck}


@shared_task(name="provisioning.check_stamps", ignore_result=True)
def check_stamps() -> None:
    from fabric.models import Stamp
    from fabric.services import check_stamp

    for stamp in Stamp.objects.all():
        check_stamp(stamp)


@shared_task(name="provisioning.reconcile", ignore_result=True)
def reconcile() -> dict:
    from fabric.models import Stamp
    from provisioning import reconcile as reconciliation

    return {stamp.name: [str(d) for d in reconciliation.drift(stamp)]
            for stamp in Stamp.objects.all()}


@shared_task(name="provisioning.run_runbook", ignore_result=True)
def run_runbook(runbook: str, stamp: str, inputs: dict | None = None) -> str:
    """Start a runbook on a schedule: django-celery-beat's periodic tasks call this with
    the runbook's name, the stamp's name and the inputs (validated like any job's)."""
    from django.db import transaction

    from fabric.models import Stamp

    with transaction.atomic():
        job = engine.enqueue(runbook, stamp=Stamp.objects.get(name=stamp), inputs=inputs or {})
    return str(job.pk)


@shared_task(name="provisioning.reset_stuck_resources", ignore_result=True)
def reset_stuck_resources() -> list[str]:
    return stuck.reset_stuck_resources()
