"""The worker's side of the engine: run a job step by step, crash-safe.

Each step's state, output and log are recorded as it goes, so that:

- a worker killed mid-step leaves a job that another worker resumes from its last
  finished step (the steps' fabric calls are idempotent by a key made of job, run and
  step, so the interrupted step is not done twice);
- a transient error (stamp unreachable, operation still running) is retried in place
  (``_with_transient_retries``, waiting with the injectable ``clock``);
- any other error undoes the finished steps in reverse order and the job ends
  ``rolled_back`` with the error kept (or ``failed``, if undo itself fails or the
  runbook moves forward only, in which case a retry resumes it);
- a job delivered more than ``max_attempts`` times gives up instead of looping.
"""

import logging
import os
import threading
import time
import traceback as tb
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django_fsm import ConcurrentTransition

from base import prepared, requestid
from fabric.drivers import DriverError
from provisioning.engine import statements
from provisioning.engine.clock import backoff, clock
from provisioning.engine.registry import Runbook, Step, StepContext, get_runbook
from provisioning.models import Job, JobState, JobStep, StepState

__all__ = ["lease", "run"]

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"  # the stamp's code for an operation a restart cut short
MAX_INTERRUPTIONS = 5  # restarts in a row under one step before it fails


class _Heartbeats:
    """Keeps ``heartbeat_at`` fresh for the jobs a process has in hand, while their steps
    block on the fabric: one thread per process, started with its first job, that beats
    every third of the lease for whatever jobs are in hand then (none, most of the time:
    a short job ends before the first beat). A thread per job cost more than the job."""

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs: dict[Any, int] = {}
        self._pid = None  # the thread does not survive a fork: the child starts its own

    @contextmanager
    def beating(self, job_id):
        with self._lock:
            self._jobs[job_id] = self._jobs.get(job_id, 0) + 1
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._beat, name="job-heartbeats", daemon=True).start()
        try:
            yield
        finally:
            with self._lock:
                self._jobs[job_id] -= 1
                if not self._jobs[job_id]:
                    del self._jobs[job_id]

    def _beat(self):
        while True:
            time.sleep(_beat_interval())
            with self._lock:
                in_hand = list(self._jobs)
            if not in_hand:
                continue
            try:
                Job.objects.filter(pk__in=in_hand).update(heartbeat_at=clock.now())
            except Exception:  # noqa: BLE001 - the next beat tries again
                log.warning("could not record the heartbeat of %s jobs", len(in_hand),
                            exc_info=True)
            finally:
                connection.close()


def _beat_interval() -> float:
    return max(1.0, settings.BUFFET_JOB_LEASE_SECONDS / 3)


_heartbeats = _Heartbeats()


def lease() -> timedelta:
    """How long a running job's worker may be silent before another takes it over."""
    return timedelta(seconds=settings.BUFFET_JOB_LEASE_SECONDS)


def _claim(job_id, worker: str) -> tuple[Job, list[JobStep] | None] | None:
    """Take the job for this worker, or None if it is finished or someone else has it;
    with the job, its steps when they were read with it (None: not read yet)."""
    now = clock.now()
    # A job's first delivery (queued, waiting for no other job): one conditional UPDATE
    # takes it, which no other delivery can also win, and one read brings its steps with
    # the job and its stamp (on PostgreSQL, both are one statement). Anything else is
    # looked at under the row's lock below.
    if statements.supported():
        if claimed := statements.claim(job_id, worker, now):
            return claimed
    elif Job.objects.filter(pk=job_id, state=JobState.QUEUED, after__isnull=True,
                          attempts__lte=F("max_attempts")).update(
            state=JobState.RUNNING, attempts=F("attempts") + 1, worker=worker,
            heartbeat_at=now, started_at=Coalesce("started_at", now)):
        steps = list(JobStep.objects.filter(job_id=job_id).select_related("job__stamp")
                     .order_by("index"))
        if not steps:
            return Job.objects.select_related("stamp").get(pk=job_id), []
        job = steps[0].job
        for row in steps:
            row.job = job  # one job in hand, not one a row
        return job, steps
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("stamp").filter(pk=job_id).first()
        if job is None or job.is_finished:
            return None
        if job.state == JobState.QUEUED and job.after_id is not None \
                and job.after.state != JobState.SUCCEEDED:
            return None  # not its turn: delivered again when the job it waits for ends
        now = clock.now()
        alive = job.heartbeat_at is not None and now - job.heartbeat_at < lease()
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
        job.save(update_fields=["state", "attempts", "worker", "heartbeat_at", "started_at"])
        return job, None


def run(job_id, *, worker: str = "") -> Job | None:
    """Run (or resume) a job. Safe to call for any delivery of the job's message.

    What the job logs and records carries ``job:<id>`` as its request id."""
    with requestid.bound(request_id=f"job:{job_id}", address=None, face=""):
        return _run(job_id, worker)


def _run(job_id, worker: str) -> Job | None:
    claimed = _claim(job_id, worker)
    if claimed is None:
        return None
    job, steps = claimed
    runbook = get_runbook(job.runbook)
    with _heartbeats.beating(job.pk):
        if job.state == JobState.COMPENSATING:
            return _compensate(job, runbook, job.error, job.traceback)
        if job.attempts > job.max_attempts:
            return _stop(job, runbook, f"Gave up after {job.max_attempts} deliveries to a "
                                       "worker (each one died or was lost).", "")
        fresh = True  # the claim has just read whether the job is to be cancelled
        rows = steps if steps is not None else list(job.steps.all())
        # The last step's row (and its outputs) is written with the job's end when both
        # can be one statement (should the end fail, ``_finish`` writes them alone; should
        # the worker die first, the step is done again under its key when the job resumes).
        ends_with = rows[-1] if rows and statements.supported() else None
        written_at_end = None
        for row in rows:
            if row.state in (StepState.SUCCEEDED, StepState.SKIPPED):
                continue
            if not fresh:
                job.cancel_requested = Job.objects.filter(pk=job.pk).values_list(
                    "cancel_requested", flat=True).get()
            fresh = False
            if job.cancel_requested:
                return _compensate(job, runbook, "Cancelled by the provider.", "",
                                   final=JobState.CANCELLED)
            step = runbook.steps[row.index - 1]
            if missing := step.skipped_on(job.stamp):
                _skip(row, f"skipped: stamp '{job.stamp.name}' has no {', '.join(missing)}")
                continue
            try:
                if _do(job, row, step, at_end=row is ends_with):
                    written_at_end = row
            except (OperationalError, InterfaceError):
                # The database went away under the step (a killed connection, a failover):
                # not the step's failure, and nothing can be recorded now. The job is left
                # running, as by a dead worker: the relay hands it on after its lease. (The
                # worker drops the broken connection after the task: portal.worker_process.)
                log.warning("job %s: the database went away during step %s; it resumes "
                            "after its lease", job.pk, row.index, exc_info=True)
                return None
            except Exception as exc:  # noqa: BLE001 - every failure becomes job state
                return _stop(job, runbook, f"Step '{step.name}' failed: {exc}", tb.format_exc())
        return _finish(job, runbook, written_at_end)


def _with_transient_retries(call: Callable[[StepContext], Any], step: Step, ctx: StepContext,
                            *, doing: str = "") -> Any:
    """Call ``do`` or ``undo``; a transient fabric error (the stamp unreachable, a 5xx) is
    retried in place, with the same idempotency key, at least the step's
    ``transient_retries`` times and for as long as the driver timeout, so a stamp that
    comes back within it is retried, not failed (the heartbeat keeps the job's lease
    while it waits). Any other error is raised."""
    attempt, waited = 0, 0.0
    while True:
        try:
            return call(ctx)
        except DriverError as exc:
            if exc.code == INTERRUPTED and ctx.interruptions < MAX_INTERRUPTIONS:
                # The stamp restarted under the operation and changed nothing: a stamp
                # that came back is asked again (under the next key), not failed.
                ctx.interruptions += 1
                ctx.log(f"the stamp restarted under the call{doing}; asking again: {exc}")
                continue
            if not exc.transient or (attempt >= step.transient_retries
                                     and waited >= settings.BUFFET_DRIVER_TIMEOUT):
                raise
            ctx.log(f"transient error{doing}, retrying: {exc}")
            delay = backoff(attempt)
            clock.sleep(delay)
            attempt, waited = attempt + 1, waited + delay


def _do(job: Job, row: JobStep, step: Step, *, at_end: bool = False) -> bool:
    """Run the step, recording it as it goes. ``at_end``: the job ends with this step and
    its end can write the step's row and the job's outputs too; True if they are left for
    the end to write (the step done, its outputs in the job in hand)."""
    ctx = StepContext(job=job, step=row)
    now = clock.now()
    prepared.update(JobStep, row.pk, state=StepState.RUNNING,
                    started_at=row.started_at or now, attempts=row.attempts + 1)
    row.state = StepState.RUNNING
    try:
        output = _with_transient_retries(step.do, step, ctx) or {}
    except Exception as exc:
        ctx.log(f"failed: {exc}")
        _save_step(row, StepState.FAILED, ctx)
        raise
    ctx.log("done")
    row.output = output
    if at_end:
        job.outputs = {**job.outputs, **output}
        _record_step(row, StepState.SUCCEEDED, ctx)
        return True
    if not output:  # nothing for the job's outputs: the step's row alone says it is done
        _save_step(row, StepState.SUCCEEDED, ctx)
        return False
    with transaction.atomic():
        job.outputs = {**job.outputs, **output}
        Job.objects.filter(pk=job.pk).update(outputs=job.outputs, heartbeat_at=clock.now())
        _save_step(row, StepState.SUCCEEDED, ctx)
    return False


def _skip(row: JobStep, reason: str) -> None:
    """An optional step the stamp cannot do: recorded as skipped, never undone."""
    now = clock.now()
    row.started_at = row.started_at or now
    JobStep.objects.filter(pk=row.pk).update(started_at=row.started_at)
    ctx = StepContext(job=row.job, step=row)
    ctx.log(reason)
    _save_step(row, StepState.SKIPPED, ctx)


def _record_step(row: JobStep, state: str, ctx: StepContext) -> None:
    """The step's end, in hand: its state, ``finished_at`` and the lines it logged."""
    row.state = state
    row.finished_at = clock.now()
    row.log = "\n".join(filter(None, [row.log, *ctx.lines]))
    ctx.lines.clear()


def _save_step(row: JobStep, state: str, ctx: StepContext) -> None:
    _record_step(row, state, ctx)
    prepared.update(JobStep, row.pk, state=row.state, finished_at=row.finished_at,
                    log=row.log, output=row.output)


def _finish(job: Job, runbook: Runbook, last: JobStep | None = None) -> Job:
    """End the job, succeeded; ``last``: the last step's row, done but not yet written,
    written with the end and the job's outputs in the same statement (PostgreSQL), before
    ``on_success`` in the same transaction."""
    # No read first: the save is ``UPDATE ... WHERE state = 'running'``
    # (ConcurrentTransitionMixin), which fails if another worker ended the job since (and
    # locks the row for ``on_success``); the job in hand has the steps' outputs. Without an
    # ``on_success``, the UPDATE is the whole end: no transaction around it.
    try:
        with transaction.atomic() if runbook.on_success else nullcontext():
            job.succeed()
            job.finished_at = clock.now()
            if last is None:
                job.save(update_fields=["state", "finished_at"])
            elif not statements.end(job, last):
                raise ConcurrentTransition("Cannot save object! The state has been changed "
                                           "since fetched from the database!")
            if runbook.on_success:
                runbook.on_success(job)
    except ConcurrentTransition:
        raise  # another worker ended the job: its rows are its own
    except Exception:
        if last is not None and runbook.on_success:
            # The end did not commit; the step it was to write is done all the same: its
            # row and outputs are written, so that a resume does not do it again and an
            # undo knows what to undo.
            with transaction.atomic():
                Job.objects.filter(pk=job.pk).update(outputs=job.outputs)
                JobStep.objects.filter(pk=last.pk).update(
                    state=last.state, finished_at=last.finished_at, log=last.log,
                    output=last.output)
        raise
    return job


def _stop(job: Job, runbook: Runbook, error: str, trace: str) -> Job:
    if runbook.compensate:
        return _compensate(job, runbook, error, trace)
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        job.fail()
        job.error, job.traceback, job.finished_at = error, trace, clock.now()
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
            _with_transient_retries(step.undo, step, ctx, doing=" while undoing")
        except Exception as exc:  # noqa: BLE001 - recorded on the job
            ctx.log(f"undo failed: {exc}")
            _save_step(row, StepState.FAILED, ctx)
            with transaction.atomic():
                job = Job.objects.select_for_update().get(pk=job.pk)
                job.fail()
                job.error = (f"{error}\nUndo of step '{step.name}' failed too: {exc}. "
                             "What the earlier steps made may remain on the stamp.")
                job.traceback = trace + "\n" + tb.format_exc()
                job.finished_at = clock.now()
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
        job.finished_at = clock.now()
        job.save()
        if runbook.on_rollback:
            runbook.on_rollback(job)
    return job
