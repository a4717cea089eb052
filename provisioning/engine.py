"""The runbook engine: declared runbooks, jobs as an outbox, crash-safe execution.

A runbook is declared in code: a name, a version, an optional input serializer and
ordered steps, each with ``do`` and ``undo``. ``enqueue`` writes the job and its steps
in the caller's transaction and publishes it to the stamp's queue after commit. A
worker runs it step by step, recording each step's state, output and log, so that:

- a worker killed mid-step leaves a job that another worker resumes from its last
  finished step (the steps' fabric calls are idempotent by a key made of job, run
  and step, so the interrupted step is not done twice);
- a transient error (stamp unreachable, operation still running) is retried in place;
  any other error undoes the finished steps in reverse order and the job ends
  ``rolled_back`` with the error kept (or ``failed``, if undo itself fails or the
  runbook moves forward only, in which case a retry resumes it);
- a job delivered more than ``max_attempts`` times gives up instead of looping;
- the sweeper re-publishes jobs that were never published or whose worker went
  silent past the lease.
"""

import logging
import threading
import time
import traceback as tb
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property, partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from base.errors import Conflict, Invalid
from fabric.drivers import DriverError
from fabric.models import Stamp
from provisioning.models import JOB_TERMINAL_STATES, Job, JobState, JobStep, StepState

__all__ = [
    "Runbook",
    "Step",
    "StepContext",
    "cancel",
    "enqueue",
    "get_runbook",
    "publish",
    "register",
    "registered",
    "retry",
    "run",
    "sweep",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    name: str
    do: Callable[["StepContext"], dict[str, Any] | None]
    undo: Callable[["StepContext"], None] | None = None
    transient_retries: int = 3


@dataclass(frozen=True)
class Runbook:
    """A named, versioned sequence of steps.

    ``on_success`` and ``on_rollback`` run inside the transaction that ends the job, so
    resource state (and quota) changes together with the job's final state.
    ``compensate`` False makes a runbook that only moves forward (a decommission, a
    failover): a failure leaves the job ``failed`` at the failed step for a retry.
    """

    name: str
    steps: tuple[Step, ...]
    version: int = 1
    inputs: Any = None  # a DRF serializer class validating the job's inputs
    on_success: Callable[[Job], None] | None = None
    on_rollback: Callable[[Job], None] | None = None
    on_retry: Callable[[Job], None] | None = None
    compensate: bool = True
    description: str = ""
    max_attempts: int = 5


_REGISTRY: dict[str, Runbook] = {}


def register(runbook: Runbook) -> Runbook:
    _REGISTRY[runbook.name] = runbook
    return runbook


def get_runbook(name: str) -> Runbook:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise Invalid(f"No runbook named '{name}'.") from None


def registered() -> dict[str, Runbook]:
    return dict(_REGISTRY)


@dataclass
class StepContext:
    """What a step's ``do`` and ``undo`` see."""

    job: Job
    step: JobStep
    lines: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> dict[str, Any]:
        return self.job.inputs

    @property
    def outputs(self) -> dict[str, Any]:
        return self.job.outputs

    def key(self, suffix: str = "") -> str:
        """The idempotency key of a fabric call of this step in this run of the job."""
        base = f"{self.job.pk}:{self.job.run}:{self.step.index}"
        return f"{base}:{suffix}" if suffix else base

    def log(self, message: str) -> None:
        self.lines.append(f"{timezone.now():%H:%M:%S} {message}")

    @cached_property
    def driver(self):
        from fabric.services import driver_for

        return driver_for(self.job.stamp)


# --- Enqueue and publish (web tier) -----------------------------------------------------

def enqueue(name: str, *, stamp: Stamp, inputs: dict[str, Any] | None = None,
            subscription=None, tenant=None, resource=None, acting_user=None) -> Job:
    """Record a job in the current transaction; it is published after commit."""
    runbook = get_runbook(name)
    inputs = dict(inputs or {})
    if runbook.inputs is not None:
        serializer = runbook.inputs(data=inputs)
        if not serializer.is_valid():
            raise Invalid(f"Inputs of runbook '{name}' are not valid.",
                          errors={k: [str(m) for m in v] for k, v in serializer.errors.items()})
        inputs = serializer.data
    if tenant is None and subscription is not None:
        tenant = subscription.tenant
    job = Job.objects.create(
        runbook=runbook.name, runbook_version=runbook.version, stamp=stamp, inputs=inputs,
        subscription=subscription, tenant=tenant,
        resource_type=resource._meta.label_lower if resource is not None else "",
        resource_id=str(resource.pk) if resource is not None else "",
        requested_by=acting_user if acting_user is not None and acting_user.is_authenticated
        else None,
        max_attempts=runbook.max_attempts,
    )
    JobStep.objects.bulk_create(
        JobStep(job=job, index=i, name=step.name) for i, step in enumerate(runbook.steps, 1))
    transaction.on_commit(partial(publish, job.pk))
    return job


def publish(job_id) -> bool:
    """Send the job to its stamp's queue. A failure is left to the relay (sweep)."""
    from provisioning.tasks import run_job

    job = Job.objects.select_related("stamp").filter(pk=job_id).first()
    if job is None or job.is_finished:
        return False
    try:
        run_job.apply_async(args=[str(job.pk)], queue=job.stamp.queue)
    except Exception:  # noqa: BLE001 - the broker may be down; the relay will publish it
        log.exception("could not publish job %s; the relay will", job_id)
        return False
    Job.objects.filter(pk=job_id).update(published_at=timezone.now())
    return True


# --- Provider actions -----------------------------------------------------------------

@transaction.atomic
def cancel(job: Job, *, acting_user=None) -> Job:
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.is_finished:
        raise Conflict(f"The job has already ended ({job.state}).", code="job-state")
    if job.state == JobState.QUEUED and not job.steps.exclude(state=StepState.PENDING).exists():
        job.cancel()
        job.error = "Cancelled before it started."
        job.finished_at = timezone.now()
        job.save()
        runbook = _REGISTRY.get(job.runbook)
        if runbook and runbook.on_rollback:
            runbook.on_rollback(job)
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
        raise Conflict(f"A {job.state} job cannot be retried.", code="job-state")
    rolled_back = job.state != JobState.FAILED
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
        runbook.on_retry(job)  # e.g. take the quota back that the rollback released
    transaction.on_commit(partial(publish, job.pk))
    return job


# --- Execution (worker) ---------------------------------------------------------------

class _Heartbeat:
    """Keeps ``heartbeat_at`` fresh while a step blocks on the fabric."""

    def __init__(self, job_id, interval: float):
        self.job_id, self.interval = job_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        try:
            while not self._stop.wait(self.interval):
                Job.objects.filter(pk=self.job_id).update(heartbeat_at=timezone.now())
        finally:
            connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)


def _lease() -> timedelta:
    return timedelta(seconds=settings.BUFFET_JOB_LEASE_SECONDS)


def _claim(job_id, worker: str) -> Job | None:
    """Take the job for this worker, or None if it is finished or someone else has it."""
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("stamp").filter(pk=job_id).first()
        if job is None or job.is_finished:
            return None
        now = timezone.now()
        alive = job.heartbeat_at is not None and now - job.heartbeat_at < _lease()
        if job.state in (JobState.RUNNING, JobState.COMPENSATING) and alive:
            return None  # a live worker has it; this delivery is a duplicate
        job.attempts += 1
        job.worker = worker
        job.heartbeat_at = now
        if job.attempts > job.max_attempts + 2:
            # Even undoing keeps killing workers: stop, and say so.
            job.fail()
            job.error = (f"Gave up after {job.attempts - 1} deliveries; undo did not finish. "
                         "What it made may remain on the stamp: reconcile it.")
            job.finished_at = now
            job.save()
            return None
        if job.state == JobState.QUEUED:
            job.start()
            job.started_at = job.started_at or now
        job.save()
        return job


def run(job_id, *, worker: str = "") -> Job | None:
    """Run (or resume) a job. Safe to call for any delivery of the job's message."""
    job = _claim(job_id, worker)
    if job is None:
        return None
    runbook = get_runbook(job.runbook)
    interval = max(1.0, settings.BUFFET_JOB_LEASE_SECONDS / 3)
    with _Heartbeat(job.pk, interval):
        if job.state == JobState.COMPENSATING:
            return _compensate(job, runbook, job.error, job.traceback)
        if job.attempts > job.max_attempts:
            return _stop(job, runbook, f"Gave up after {job.max_attempts} deliveries to a "
                                       "worker (each one died or was lost).", "")
        steps = list(job.steps.all())
        for row in steps:
            if row.state == StepState.SUCCEEDED:
                continue
            job.refresh_from_db(fields=["cancel_requested"])
            if job.cancel_requested:
                return _compensate(job, runbook, "Cancelled by the provider.", "",
                                   final=JobState.CANCELLED)
            step = runbook.steps[row.index - 1]
            try:
                _do(job, row, step)
            except Exception as exc:  # noqa: BLE001 - every failure becomes job state
                return _stop(job, runbook, _describe(step, exc), tb.format_exc())
        return _finish(job, runbook)


def _describe(step: Step, exc: Exception) -> str:
    return f"Step '{step.name}' failed: {exc}"


def _do(job: Job, row: JobStep, step: Step) -> None:
    ctx = StepContext(job=job, step=row)
    now = timezone.now()
    JobStep.objects.filter(pk=row.pk).update(
        state=StepState.RUNNING, started_at=row.started_at or now, attempts=row.attempts + 1)
    row.state = StepState.RUNNING
    try:
        for attempt in range(step.transient_retries + 1):
            try:
                output = step.do(ctx) or {}
                break
            except DriverError as exc:
                if not exc.transient or attempt == step.transient_retries:
                    raise
                ctx.log(f"transient error, retrying: {exc}")
                time.sleep(min(8.0, 0.5 * 2**attempt))
    except Exception as exc:
        ctx.log(f"failed: {exc}")
        _save_step(row, StepState.FAILED, ctx)
        raise
    ctx.log("done")
    with transaction.atomic():
        job.outputs = {**job.outputs, **output}
        Job.objects.filter(pk=job.pk).update(outputs=job.outputs, heartbeat_at=timezone.now())
        row.output = output
        _save_step(row, StepState.SUCCEEDED, ctx)


def _save_step(row: JobStep, state: str, ctx: StepContext) -> None:
    row.state = state
    row.finished_at = timezone.now()
    row.log = "\n".join(filter(None, [row.log, *ctx.lines]))
    ctx.lines.clear()
    row.save(update_fields=["state", "finished_at", "log", "output"])


def _finish(job: Job, runbook: Runbook) -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        job.succeed()
        job.finished_at = timezone.now()
        job.save()
        if runbook.on_success:
            runbook.on_success(job)
    return job


def _stop(job: Job, runbook: Runbook, error: str, trace: str) -> Job:
    if runbook.compensate:
        return _compensate(job, runbook, error, trace)
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        job.fail()
        job.error, job.traceback, job.finished_at = error, trace, timezone.now()
        job.save()
    return job


def _compensate(job: Job, runbook: Runbook, error: str, trace: str,
                final: str = JobState.ROLLED_BACK) -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("stamp").get(pk=job.pk)
        if job.state != JobState.COMPENSATING:
            job.compensate()
            job.error, job.traceback = error, trace
            job.save()
    done = job.steps.filter(state__in=[StepState.SUCCEEDED, StepState.UNDOING]).order_by("-index")
    for row in done:
        step = runbook.steps[row.index - 1]
        ctx = StepContext(job=job, step=row)
        if step.undo is None:
            ctx.log("nothing to undo")
            _save_step(row, StepState.UNDONE, ctx)
            continue
        JobStep.objects.filter(pk=row.pk).update(state=StepState.UNDOING)
        try:
            for attempt in range(step.transient_retries + 1):
                try:
                    step.undo(ctx)
                    break
                except DriverError as exc:
                    if not exc.transient or attempt == step.transient_retries:
                        raise
                    ctx.log(f"transient error while undoing, retrying: {exc}")
                    time.sleep(min(8.0, 0.5 * 2**attempt))
        except Exception as exc:  # noqa: BLE001 - recorded on the job
            ctx.log(f"undo failed: {exc}")
            _save_step(row, StepState.FAILED, ctx)
            with transaction.atomic():
                job = Job.objects.select_for_update().get(pk=job.pk)
                job.fail()
                job.error = (f"{error}\nUndo of step '{step.name}' failed too: {exc}. "
                             "What the earlier steps made may remain on the stamp.")
                job.traceback = trace + "\n" + tb.format_exc()
                job.finished_at = timezone.now()
                job.save()
                if runbook.on_rollback:
                    runbook.on_rollback(job)
            return job
        ctx.log("undone")
        _save_step(row, StepState.UNDONE, ctx)
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if final == JobState.CANCELLED:
            job.cancel()
        else:
            job.roll_back()
        job.finished_at = timezone.now()
        job.save()
        if runbook.on_rollback:
            runbook.on_rollback(job)
    return job


# --- Sweeper (beat) -------------------------------------------------------------------

@dataclass
class SweepReport:
    published: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)


def sweep() -> SweepReport:
    """Publish what was never published, hand jobs of silent workers to live ones, and
    report jobs stuck past their deadline. Idempotent: publishing twice is harmless,
    a duplicate delivery finds the job taken or finished."""
    now = timezone.now()
    report = SweepReport()
    grace = timedelta(seconds=settings.BUFFET_OUTBOX_GRACE_SECONDS)
    never_published = Job.objects.filter(state=JobState.QUEUED, published_at__isnull=True,
                                         created_at__lt=now - grace)
    lost = Job.objects.filter(state=JobState.QUEUED, published_at__lt=now - timedelta(
        seconds=settings.BUFFET_JOB_STUCK_SECONDS))
    for queryset in (never_published, lost):
        for job_id in queryset.values_list("pk", flat=True):
            if publish(job_id):
                report.published.append(str(job_id))
    silent = Job.objects.filter(state__in=[JobState.RUNNING, JobState.COMPENSATING]).filter(
        Q(heartbeat_at__lt=now - _lease()) | Q(heartbeat_at__isnull=True))
    for job_id in silent.values_list("pk", flat=True):
        if publish(job_id):
            report.resumed.append(str(job_id))
    deadline = now - timedelta(seconds=settings.BUFFET_JOB_STUCK_SECONDS)
    report.stuck = [str(pk) for pk in Job.objects.exclude(state__in=JOB_TERMINAL_STATES)
                    .filter(created_at__lt=deadline).values_list("pk", flat=True)]
    if report.stuck:
        log.warning("jobs stuck past %s: %s", deadline, ", ".join(report.stuck))
    return report
