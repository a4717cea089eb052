"""Delivery of jobs to workers: publishing, the Celery task, and the jobs waiting their turn.

``publish`` sends a job to its stamp's queue, unless it waits for another job that has
not finished (``Job.after``). ``run_job`` is the Celery task a worker runs it in;
``acks_late`` with ``reject_on_worker_lost`` hands the message of a killed worker to
another, which resumes the job from its last finished step. When a job ends, ``settle``
delivers the jobs that waited for it: published if it succeeded, rolled back (their
``on_rollback`` gives back what they hold) if it ended otherwise, and so on down a
chain. Everything here is safe to repeat: the relay calls ``settle`` again for what a
lost process left.

It lives beside the runner, so that the outbox can publish without importing the app's
task module (``provisioning.tasks`` imports the engine, never the reverse).
"""

import logging

from celery import current_task, shared_task
from django.db import DatabaseError, InterfaceError, OperationalError, transaction

from provisioning.engine import runner
from provisioning.engine.clock import clock
from provisioning.engine.registry import registered
from provisioning.models import Job, JobState, StepState

__all__ = ["publish", "run", "run_job", "settle"]

log = logging.getLogger(__name__)


# A database error out of a run (a connection the server dropped, a deadlock) is not the
# job's failure: the message is delivered again, and the run takes up where it was (a
# job claimed before the error is its worker's until its lease runs out).
@shared_task(name="provisioning.run_job", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True, autoretry_for=(InterfaceError, OperationalError),
             retry_backoff=1, retry_backoff_max=30, max_retries=5)
def run_job(job_id: str) -> None:
    run(job_id, worker=current_task.request.hostname or "")


def run(job_id, *, worker: str = "") -> Job | None:
    """Run (or resume) a job, then deliver the jobs that waited for it."""
    job = runner.run(job_id, worker=worker)
    if job is not None and job.is_finished:
        settle(job)
    return job


def publish(job_id, *, queue: str | None = None) -> bool:
    """Send the job to its stamp's queue; a job still waiting its turn stays queued here,
    and one whose turn will never come is rolled back. A broker failure is left to the
    relay.

    ``queue``: the stamp's queue, from the caller that has just committed the job waiting
    for no other (``enqueue``): nothing to look up, and nothing to write, as the job was
    written published at its commit; should the broker refuse it, it is marked not
    published, for the relay to publish after the outbox grace. Were the job to have
    ended or gone since, its delivery finds so and does nothing, as for any message sent
    twice."""
    at_commit = queue is not None
    if not at_commit:
        try:
            job = Job.objects.select_related("stamp", "after").get(pk=job_id)
        except Job.DoesNotExist:
            return False
        if job.is_finished:
            return False
        if job.state == JobState.QUEUED and job.after is not None:
            if not job.after.is_finished:
                return False  # settled when the job it waits for ends
            if job.after.state != JobState.SUCCEEDED:
                _abandon(job.pk, job.after)
                return False
        queue = job.stamp.queue
    try:
        run_job.apply_async(args=[str(job_id)], queue=queue)
    except Exception:  # noqa: BLE001 - the broker may be down; the relay will publish it
        log.exception("could not publish job %s; the relay will", job_id)
        if at_commit:
            _not_published(job_id)
        return False
    if not at_commit:
        Job.objects.filter(pk=job_id).update(published_at=clock.now())
    return True


def _not_published(job_id) -> None:
    """The job written published at its commit was not: the relay publishes it after the
    outbox grace (were this write to fail too, after a lease, as a lost message)."""
    try:
        Job.objects.filter(pk=job_id, state=JobState.QUEUED).update(published_at=None)
    except DatabaseError:
        log.exception("could not mark job %s not published; the relay will publish it "
                      "after a lease", job_id)


def settle(job: Job) -> None:
    """Deliver the jobs that wait for ``job``, which has ended."""
    runbook = registered().get(job.runbook)
    if runbook is not None and not runbook.awaited:
        return  # no job waits for one of these: enqueue refuses it
    for waiting_id in Job.objects.filter(after=job, state=JobState.QUEUED).values_list(
            "pk", flat=True):
        publish(waiting_id)


def _abandon(job_id, after: Job) -> None:
    """The job waited for one that did not succeed: it ends rolled back without running,
    its runbook gives back what it held, and the jobs waiting for it follow."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state != JobState.QUEUED or job.steps.exclude(
                state=StepState.PENDING).exists():
            return
        job.abandon()
        first_line = (after.error or "").strip().splitlines()[:1]
        job.error = (f"Not started: the job it waited for ({after.runbook}) ended "
                     f"{after.state}" + (f": {first_line[0]}" if first_line else "."))
        job.finished_at = clock.now()
        job.save()
        runbook = registered().get(job.runbook)
        if runbook and runbook.on_rollback:
            runbook.on_rollback(job)
    settle(job)
