"""The relay and sweeper (beat): what the outbox could not deliver, delivered.

Publishes jobs that were never published (a broker outage, a job whose turn came while
no one was there to deliver it), and queued jobs whose message is out longer than a
lease (lost by the broker, or never sent: a job is written published at its commit, and
the process may die before it sends it); hands jobs whose worker went silent past the
lease to a live one; reports jobs stuck past
their deadline. Idempotent: publishing twice is harmless, a duplicate delivery finds the
job taken or finished.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q

from provisioning.engine import outbox
from provisioning.engine.clock import clock
from provisioning.engine.runner import lease
from provisioning.models import JOB_TERMINAL_STATES, Job, JobState

__all__ = ["SweepReport", "sweep"]

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    published: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)


def sweep() -> SweepReport:
    now = clock.now()
    report = SweepReport()
    grace = timedelta(seconds=settings.BUFFET_OUTBOX_GRACE_SECONDS)
    never_published = Job.objects.filter(state=JobState.QUEUED, published_at__isnull=True,
                                         created_at__lt=now - grace)
    # A queued job's message out longer than a lease is taken for lost (a broker restarted
    # without it, a dead worker holding it unacknowledged until the visibility timeout):
    # published again. A duplicate is harmless, its delivery finds the job taken or ended.
    lost = Job.objects.filter(state=JobState.QUEUED, published_at__lt=now - lease())
    for queryset in (never_published, lost):
        for job_id in queryset.values_list("pk", flat=True):
            if outbox.publish(job_id):
                report.published.append(str(job_id))
    silent = Job.objects.filter(state__in=[JobState.RUNNING, JobState.COMPENSATING]).filter(
        Q(heartbeat_at__lt=now - lease()) | Q(heartbeat_at__isnull=True))
    for job_id in silent.values_list("pk", flat=True):
        if outbox.publish(job_id):
            report.resumed.append(str(job_id))
    deadline = now - timedelta(seconds=settings.BUFFET_JOB_STUCK_SECONDS)
    waiting_its_turn = Q(state=JobState.QUEUED) & ~Q(after__state__in=JOB_TERMINAL_STATES) \
        & Q(after__isnull=False)
    report.stuck = [str(pk) for pk in Job.objects.exclude(state__in=JOB_TERMINAL_STATES)
                    .exclude(waiting_its_turn)
                    .filter(created_at__lt=deadline).values_list("pk", flat=True)]
    if report.stuck:
        log.warning("jobs stuck past %s: %s", deadline, ", ".join(report.stuck))
    return report
