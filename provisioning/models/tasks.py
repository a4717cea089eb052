"""Self-service tasks: a runbook the provider publishes to plans and roles with a small,
validated input schema, and its runs (a result for the tenant, diagnostics for the
provider)."""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from base.fields import EncryptedJSONField
from base.scoping import RestrictedQuerySet
from provisioning.models.jobs import Job
from provisioning.models.resources import VirtualMachine

__all__ = ["ACTIVE_RUN_STATES", "ConsolePassword", "Task", "TaskHiding", "TaskRun",
           "TaskRunState"]

DEFAULT_ROLES = ["owner", "admin", "operator"]


def _default_roles() -> list[str]:
    return list(DEFAULT_ROLES)


class Task(models.Model):
    """A runbook on the menu. ``secret_parameters`` are the provider's (an API key the
    runbook needs), stored encrypted, handed to the runbook's steps only, never answered."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    runbook = models.CharField(max_length=100, help_text="A runbook that may run as a task.")
    input_schema = models.JSONField(default=dict)
    plans = models.ManyToManyField("plans.Plan", blank=True, related_name="tasks")
    roles = models.JSONField(default=_default_roles,
                             help_text="The tenant roles that may run it.")
    requires_approval = models.BooleanField(default=False)
    timeout_seconds = models.PositiveIntegerField(default=600)
    one_run_per_resource = models.BooleanField(
        default=True, help_text="At most one unfinished run at a time on the same object.")
    enabled = models.BooleanField(default=True)
    secret_parameters = EncryptedJSONField(blank=True, default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]
        constraints = [
            models.CheckConstraint(condition=models.Q(timeout_seconds__gte=1),
                                   name="task_timeout_positive",
                                   violation_error_message="A timeout is at least a second."),
        ]

    def __str__(self):
        return self.slug


class TaskHiding(models.Model):
    """A tenant owner's choice: these roles of the tenant do not see the task."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="hidings")
    roles = models.JSONField(default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "task"],
                                               name="task_hiding_once")]

    def __str__(self):
        return f"{self.task_id} hidden from {', '.join(self.roles)}"


class TaskRunState(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", "Waiting for approval"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_RUN_STATES = frozenset({TaskRunState.PENDING_APPROVAL, TaskRunState.QUEUED,
                               TaskRunState.RUNNING})


class TaskRun(ConcurrentTransitionMixin, models.Model):
    """One run of a task. Once queued it has a job, and follows it (``follow``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="runs")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    subscription = models.ForeignKey("plans.Subscription", on_delete=models.CASCADE,
                                     related_name="task_runs")
    inputs = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    state = FSMField(max_length=20, choices=TaskRunState.choices, default=TaskRunState.QUEUED,
                     protected=True)
    job = models.OneToOneField(Job, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="task_run")
    resource_id = models.CharField(max_length=64, blank=True, db_index=True,
                                   help_text="The object it acts on (one run at a time).")
    result = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    sealed = EncryptedJSONField(blank=True, default=dict,
                                help_text="Result outputs shown once to the requester.")
    diagnostics = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="+")
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                    null=True, blank=True, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "tenant"
    TERMINAL_STATES = frozenset({TaskRunState.SUCCEEDED, TaskRunState.FAILED,
                                 TaskRunState.REJECTED, TaskRunState.CANCELLED})

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=TaskRunState.values),
                                   name="task_run_state_valid",
                                   violation_error_message="Not a state of a task run."),
        ]

    def __str__(self):
        return f"{self.task_id} {self.id} ({self.state})"

    @transition(field=state, source=TaskRunState.PENDING_APPROVAL, target=TaskRunState.QUEUED)
    def approve(self):
        pass

    @transition(field=state, source=TaskRunState.PENDING_APPROVAL,
                target=TaskRunState.REJECTED)
    def reject(self):
        pass

    @transition(field=state, source=[TaskRunState.PENDING_APPROVAL, TaskRunState.QUEUED],
                target=TaskRunState.FAILED)
    def refuse(self):
        """Its inputs no longer hold when it starts (fail closed)."""

    @transition(field=state, source=[TaskRunState.QUEUED, TaskRunState.RUNNING],
                target=TaskRunState.RUNNING)
    def mark_running(self):
        pass

    @transition(field=state, source=[TaskRunState.QUEUED, TaskRunState.RUNNING],
                target=TaskRunState.SUCCEEDED)
    def mark_succeeded(self):
        pass

    @transition(field=state, source=[TaskRunState.QUEUED, TaskRunState.RUNNING],
                target=TaskRunState.FAILED)
    def mark_failed(self):
        pass

    @transition(field=state, source=[TaskRunState.QUEUED, TaskRunState.RUNNING],
                target=TaskRunState.CANCELLED)
    def mark_cancelled(self):
        pass


class ConsolePassword(models.Model):
    """A VM's console password, hashed: the clear one is shown once, to whoever rotated it."""

    vm = models.OneToOneField(VirtualMachine, on_delete=models.CASCADE,
                              related_name="console_password")
    password_hash = models.CharField(max_length=256)
    rotated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"console password of {self.vm_id}"
