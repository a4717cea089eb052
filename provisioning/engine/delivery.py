"""The Celery task that delivers a job to a worker.

It lives beside the runner, so that the outbox can publish it without importing the
app's task module (``provisioning.tasks`` imports the engine, never the reverse).
``acks_late`` with ``reject_on_worker_lost`` hands the message of a killed worker to
another, which resumes the job from its last finished step.
"""

from celery import current_task, shared_task

from provisioning.engine import runner

__all__ = ["run_job"]


@shared_task(name="provisioning.run_job", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def run_job(job_id: str) -> None:
    runner.run(job_id, worker=current_task.request.hostname or "")
