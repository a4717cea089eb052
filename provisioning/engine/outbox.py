"""The web tier's side of the engine: jobs as an outbox.

``enqueue`` writes the job and its steps in the caller's transaction and publishes it to
the stamp's queue after commit (the relay publishes what a broker outage left behind
after the outbox grace, and what a lost commit hook did after a lease). A job may wait
its turn behind another (``after``): it stays queued until that one ends
(``delivery.settle``). ``cancel`` and ``retry`` are the provider's
actions on a job; each takes the acting user and leaves an audit row.
"""

from functools import partial
from typing import Any

from django.db import transaction
from django_fsm import TransitionNotAllowed

from base import events
from base.batch import Pending
from base.errors import Conflict, ErrorCode, Invalid
from base.events import Event
from fabric.models import Stamp
from provisioning.engine.clock import clock
from provisioning.engine.delivery import publish, settle
from provisioning.engine.registry import Runbook, get_runbook, registered
from provisioning.models import Job, JobState, JobStep, StepState

__all__ = ["cancel", "enqueue", "publish", "retry"]


def enqueue(runbook: Runbook | str, *, stamp: Stamp, inputs: dict[str, Any] | None = None,
            subscription=None, tenant=None, resource=None, acting_user=None,
            after: Job | None = None, writes: Pending | None = None) -> Job:
    """Record a job of ``runbook`` in the current transaction; it is published after commit,
    or, with ``after``, once that job has succeeded (and rolled back if it does not).
    With ``writes``, the job and its steps are added to them, for the caller to write.

    Callers pass the ``Runbook`` (its module constant). A name is accepted only where one
    comes from outside the code: a beat schedule that starts a runbook.
    """
    if isinstance(runbook, str):
        runbook = get_runbook(runbook)
    if after is not None and not get_runbook(after.runbook).awaited:
        # Its end would not look for this job, which would wait for ever.
        raise ValueError(f"No job can wait for a '{after.runbook}' job: that runbook is "
                         "not declared awaited.")
    if missing := stamp.lacks(*runbook.needs):
        # Refused now, with the reason, rather than a job that fails at the step.
        raise Conflict(f"Stamp '{stamp.name}' ({stamp.driver}) cannot run '{runbook.name}': "
                       f"it has no {', '.join(missing)}.", code=ErrorCode.STAMP_INCAPABLE)
    inputs = dict(inputs or {})
    if runbook.inputs is not None:
        serializer = runbook.inputs(data=inputs)
        if not serializer.is_valid():
            raise Invalid(f"Inputs of runbook '{runbook.name}' are not valid.",
                          errors={k: [str(m) for m in v] for k, v in serializer.errors.items()})
        inputs = serializer.data
    tenant_id = tenant.pk if tenant is not None else (
        subscription.tenant_id if subscription is not None else None)
    job = Job(
        runbook=runbook.name, runbook_version=runbook.version, stamp=stamp, inputs=inputs,
        subscription=subscription, tenant_id=tenant_id,
        resource_type=resource._meta.label_lower if resource is not None else "",
        resource_id=str(resource.pk) if resource is not None else "",
        requested_by=acting_user if acting_user is not None and acting_user.is_authenticated
        else None,
        max_attempts=runbook.max_attempts, after=after,
        # Published at its commit (``publish`` marks it not, should the broker refuse it):
        # no write after the commit. A process that dies between the commit and the
        # publish leaves it to the relay, a lease later, as a lost message. One waiting
        # for another job is published when its turn comes.
        published_at=clock.now() if after is None else None,
    )
    steps = [JobStep(job=job, index=i, name=step.name)
             for i, step in enumerate(runbook.steps, 1)]
    if writes is not None:
        writes.add(job, *steps)
    else:
        job.save(force_insert=True)
        JobStep.objects.bulk_create(steps)
    # Published at commit: one waiting for another job, once its turn has come.
    transaction.on_commit(partial(publish, job.pk) if after is not None
                          else partial(publish, job.pk, queue=stamp.queue))
    return job


@transaction.atomic
def cancel(job: Job, *, acting_user=None) -> Job:
    """Cancel a queued job at once, or ask a running one to stop and undo."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.is_finished:
        raise Conflict(f"The job has already ended ({job.state}).", code=ErrorCode.JOB_STATE)
    events.record(Event.JOB_CANCELLED, job, acting_user=acting_user,
                  before={"state": job.state}, after={"cancel_requested": True},
                  runbook=job.runbook)
    if job.state == JobState.QUEUED and not job.steps.exclude(state=StepState.PENDING).exists():
        job.cancel()
        job.error = "Cancelled before it started."
        job.finished_at = clock.now()
        job.save()
        runbook = registered().get(job.runbook)
        if runbook and runbook.on_rollback:
            runbook.on_rollback(job)
        transaction.on_commit(partial(settle, job))  # what waited for it will not run
        return job
    job.cancel_requested = True
    job.save(update_fields=["cancel_requested"])
    return job


@transaction.atomic
def retry(job: Job, *, acting_user=None) -> Job:
    """Run a failed, rolled-back or cancelled job again: from the first unfinished step,
    with fresh idempotency keys (a new run)."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.state not in (JobState.FAILED, JobState.ROLLED_BACK, JobState.CANCELLED):
        raise Conflict(f"A {job.state} job cannot be retried.", code=ErrorCode.JOB_STATE)
    if job.after is not None and job.after.is_finished and job.after.state != JobState.SUCCEEDED:
        raise Conflict(f"This job waits for a {job.after.runbook} job that ended "
                       f"{job.after.state}: retry that one first.", code=ErrorCode.JOB_STATE)
    rolled_back = job.state != JobState.FAILED
    before = {"state": job.state, "run": job.run}
    job.requeue()
    job.run += 1
    job.attempts = 0
    job.error = job.traceback = ""
    job.cancel_requested = False
    job.published_at = job.finished_at = job.heartbeat_at = None
    if rolled_back:
        job.outputs = {}
    job.save()
    redo = job.steps.all() if rolled_back else job.steps.exclude(state=StepState.SUCCEEDED)
    redo.update(state=StepState.PENDING, finished_at=None)
    runbook = get_runbook(job.runbook)
    if runbook.on_retry:
        try:
            runbook.on_retry(job)  # e.g. take the quota back that the rollback released
        except TransitionNotAllowed as exc:
            # What the job acts on has moved on since (deleted, decommissioned): a retry
            # would bring it back behind the tenant's back.
            raise Conflict("What this job acts on has changed since it ended; it cannot be "
                           "retried.", code=ErrorCode.JOB_STATE) from exc
    events.record(Event.JOB_RETRIED, job, acting_user=acting_user, runbook=job.runbook,
                  run=job.run, before=before, after={"state": job.state, "run": job.run})
    transaction.on_commit(partial(publish, job.pk))
    return job
