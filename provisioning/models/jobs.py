"""Jobs of the runbook engine: one run of a runbook, and its steps."""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from base.scoping import RestrictedQuerySet
from fabric.models import Stamp

__all__ = ["JOB_TERMINAL_STATES", "Job", "JobState", "JobStep", "StepState"]


# --- Runbook jobs ---------------------------------------------------------------------


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    COMPENSATING = "compensating", "Undoing"
    ROLLED_BACK = "rolled_back", "Rolled back"
    CANCELLED = "cancelled", "Cancelled"


JOB_TERMINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.ROLLED_BACK, JobState.CANCELLED}
)


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNDOING = "undoing", "Undoing"
    UNDONE = "undone", "Undone"
    SKIPPED = "skipped", "Skipped"


class Job(ConcurrentTransitionMixin, models.Model):
    """One run of a runbook. It is also the outbox: written in the request's transaction,
    published to the stamp's queue after commit, and re-published by the relay if the
    publish never happened."""


    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    runbook = models.CharField(max_length=100, db_index=True)
    runbook_version = models.PositiveIntegerField(default=1)
    state = FSMField(default=JobState.QUEUED, choices=JobState.choices, protected=True)
    inputs = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    outputs = models.JSONField(default=dict, encoder=DjangoJSONEncoder,
                               help_text="What the steps produced, by key.")
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    stamp = models.ForeignKey(Stamp, on_delete=models.PROTECT, related_name="jobs")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.SET_NULL, null=True,
                               blank=True, related_name="jobs")
    subscription = models.ForeignKey("plans.Subscription", on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="jobs")
    resource_type = models.CharField(max_length=64, blank=True)
    resource_id = models.CharField(max_length=64, blank=True, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="+")
    run = models.PositiveIntegerField(default=1, help_text="Raised by each retry; part of "
                                      "every idempotency key, so a retry starts afresh.")
    attempts = models.PositiveIntegerField(default=0,
                                           help_text="Deliveries to a worker in this run.")
    max_attempts = models.PositiveIntegerField(default=5)
    after = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="waiting",
        help_text="The job this one waits for: it is published when that one succeeds, and "
                  "rolled back if that one ends otherwise.")
    cancel_requested = models.BooleanField(default=False)
    published_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True,
                                        help_text="Last sign of life of the worker running it.")
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "tenant"  # what restrict(tenant) follows
    TERMINAL_STATES = JOB_TERMINAL_STATES

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "heartbeat_at"]),
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["subscription", "-created_at"]),
            models.Index(fields=["resource_type", "resource_id"]),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=JobState.values),
                                   name="job_state_valid",
                                   violation_error_message="Not a state of a job."),
        ]

    def __str__(self):
        return f"{self.runbook} {self.id} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in JOB_TERMINAL_STATES

    @transition(field=state, source=[JobState.QUEUED, JobState.RUNNING], target=JobState.RUNNING)
    def start(self):
        """A worker claims the job (again, after a lost worker)."""

    @transition(field=state, source=JobState.RUNNING, target=JobState.SUCCEEDED)
    def succeed(self):
        pass

    @transition(field=state, source=[JobState.RUNNING, JobState.COMPENSATING],
                target=JobState.COMPENSATING)
    def compensate(self):
        pass

    @transition(field=state, source=JobState.COMPENSATING, target=JobState.ROLLED_BACK)
    def roll_back(self):
        pass

    @transition(field=state, source=[JobState.QUEUED, JobState.RUNNING, JobState.COMPENSATING],
                target=JobState.FAILED)
    def fail(self):
        """Undo itself failed, or the job gave up: what it left behind is in the error."""

    @transition(field=state, source=JobState.QUEUED, target=JobState.ROLLED_BACK)
    def abandon(self):
        """The job it waited for did not succeed: it never starts."""

    @property
    def is_waiting(self) -> bool:
        """Queued behind a job that has not finished yet."""
        return (self.state == JobState.QUEUED and self.after_id is not None
                and self.after.state not in JOB_TERMINAL_STATES)

    @transition(field=state, source=[JobState.QUEUED, JobState.COMPENSATING],
                target=JobState.CANCELLED)
    def cancel(self):
        pass

    @transition(field=state, source=[JobState.FAILED, JobState.ROLLED_BACK, JobState.CANCELLED],
                target=JobState.QUEUED)
    def requeue(self):
        pass


class JobStep(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    state = models.CharField(max_length=16, choices=StepState.choices,
                             default=StepState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    log = models.TextField(blank=True)
    output = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="job_step_unique_index"),
        ]

    def __str__(self):
        return f"{self.index}. {self.name} ({self.state})"
