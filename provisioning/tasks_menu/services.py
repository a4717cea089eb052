"""Use cases of self-service tasks: the provider saves and publishes them, tenants run
them (validated on the server, failing closed), owners and admins approve or reject runs.
The only place that changes tasks and their runs."""

from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from base import events
from base.errors import Conflict, ErrorCode, Forbidden, Invalid, NotFound, ServiceError
from base.events import Event
from plans.models import Subscription, SubscriptionState
from provisioning.models import (
    ACTIVE_RUN_STATES,
    JOB_TERMINAL_STATES,
    JobState,
    Task,
    TaskHiding,
    TaskRun,
    TaskRunState,
)
from provisioning.tasks_menu import choices, schema
from provisioning.tasks_menu.runbooks import BUILTINS, TASK_RUNBOOKS
from tenants.models import Role

__all__ = ["approve_run", "effective_state", "hide_task", "menu", "publish_builtins",
           "reject_run", "result_of", "reveal_sealed", "run_task", "save_task", "state_filter",
           "subscription_of"]


# --- the provider's side --------------------------------------------------------------

@transaction.atomic
def save_task(task: Task | None, *, fields: dict[str, Any], plans=None, acting_user) -> Task:
    """Create or change a task: its runbook must be one that runs as a task, its schema
    within the subset and no wider than the runbook's."""
    task = task or Task()
    for name, value in fields.items():
        setattr(task, name, value)
    entry = TASK_RUNBOOKS.get(task.runbook)
    if entry is None:
        raise Invalid("This runbook cannot run as a task.",
                      errors={"runbook": [f"One of: {', '.join(sorted(TASK_RUNBOOKS))}."]})
    if not task.input_schema:
        task.input_schema = entry.schema
    schema.check_schema(task.input_schema)
    wider = schema.narrows(task.input_schema, entry.schema)
    if wider:
        raise Invalid("The input schema asks for more than the runbook accepts.", errors=wider)
    bad_roles = [r for r in task.roles or [] if r not in Role.values]
    if not isinstance(task.roles, list) or bad_roles or not task.roles:
        raise Invalid("Roles are tenant roles.",
                      errors={"roles": [f"A non-empty list of: {', '.join(Role.values)}."]})
    if not isinstance(task.secret_parameters, dict) or not all(
            isinstance(v, str) for v in task.secret_parameters.values()):
        raise Invalid("Secret parameters are names with string values.",
                      errors={"secret_parameters": ["An object of strings."]})
    task.save()
    if plans is not None:
        task.plans.set(plans)
    # Secret parameters are named, never written: the audit row says which were set.
    events.record(Event.TASK_SAVED, task, acting_user=acting_user,
                  after={"slug": task.slug, "runbook": task.runbook,
                         "requires_approval": task.requires_approval,
                         "roles": task.roles, "enabled": task.enabled},
                  secret_parameters=sorted(task.secret_parameters))
    return task


@transaction.atomic
def publish_builtins(plans, *, acting_user=None) -> list[Task]:
    """Publish (or refresh) the built-in tasks to ``plans``: the demo data's menu."""
    tasks = []
    for builtin in BUILTINS:
        task = Task.objects.filter(slug=builtin.slug).first()
        task = save_task(task, fields={
            "slug": builtin.slug, "title": builtin.title, "description": builtin.description,
            "runbook": builtin.runbook, "requires_approval": builtin.requires_approval,
            "roles": list(builtin.roles),
            "input_schema": TASK_RUNBOOKS[builtin.runbook].schema}, acting_user=acting_user)
        task.plans.add(*plans)
        tasks.append(task)
    return tasks


# --- the menu -------------------------------------------------------------------------

def _role(user) -> str | None:
    membership = getattr(user, "membership", None)
    return membership.role if membership is not None else None


def menu(tenant, user, *, subscription: Subscription | None = None) -> QuerySet[Task]:
    """The tasks the caller may see: published to the plan of one of the tenant's
    subscriptions (that one's, with ``subscription``), enabled, for the caller's role, and
    not hidden from it by the tenant's owner."""
    if tenant is None:
        return Task.objects.none()
    role = _role(user)
    if subscription is not None:
        plans = [subscription.plan_id]
    else:
        plans = (Subscription.objects.restrict(tenant)
                 .exclude(state__in=[SubscriptionState.DELETING, SubscriptionState.DELETED])
                 .values("plan_id"))
    hidden = [h.task_id for h in TaskHiding.objects.filter(tenant=tenant)
              if role in h.roles]
    tasks = (Task.objects.filter(enabled=True, plans__in=plans).exclude(pk__in=hidden)
             .distinct().order_by("title"))
    return tasks.filter(pk__in=[t.pk for t in tasks if role in t.roles])


def subscription_of(tenant, subscription_id) -> Subscription:
    subscription = (Subscription.objects.restrict(tenant).select_related("plan", "tenant")
                    .filter(pk=subscription_id)
                    .exclude(state=SubscriptionState.DELETED).first())
    if subscription is None:
        raise NotFound("No such subscription.")
    return subscription


@transaction.atomic
def hide_task(tenant, task: Task, *, roles: list[str], acting_user) -> TaskHiding:
    if not acting_user.has_perm("tenants.manage_members", tenant) or _role(acting_user) != \
            Role.OWNER:
        raise Forbidden("Only an owner of the organisation hides tasks from its roles.")
    bad = [r for r in roles if r not in Role.values or r == Role.OWNER]
    if bad:
        raise Invalid("Not roles that can be hidden from.",
                      errors={"hidden_from": ["Roles among admin, operator, reader."]})
    hiding, _ = TaskHiding.objects.update_or_create(tenant=tenant, task=task,
                                                    defaults={"roles": sorted(set(roles))})
    events.record(Event.TASK_HIDDEN, task, acting_user=acting_user, tenant=tenant,
                  after={"hidden_from": hiding.roles})
    return hiding


# --- runs -----------------------------------------------------------------------------

def _validate(task: Task, subscription: Subscription, inputs: Any
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The inputs with defaults applied and the objects they name; 400 naming each bad
    ``inputs.<key>``, 404 for an object that is not the caller's, 409 when a choice cannot
    be computed (fail closed)."""
    errors = schema.input_errors(task.input_schema, inputs)
    if errors:
        raise Invalid("The task's inputs are not valid.", errors=errors)
    values = schema.apply_defaults(task.input_schema, inputs)
    try:
        errors, chosen, missing = choices.resolve(task.input_schema, values, subscription)
    except choices.ChoicesUnavailable as exc:
        raise Conflict(f"The choices of this task cannot be computed now ({exc}); nothing "
                       "was run.", code=ErrorCode.TASK_CHOICES_UNAVAILABLE) from exc
    if missing:
        raise NotFound(f"No such {', '.join(missing)}.")
    if errors:
        raise Invalid("The task's inputs are not valid.", errors=errors)
    return values, chosen


def _launch(run: TaskRun, chosen: dict[str, Any], *, acting_user) -> None:
    entry = TASK_RUNBOOKS[run.task.runbook]
    job = entry.launch(run.subscription, run.inputs, chosen, acting_user=acting_user)
    run.job = job
    run.save(update_fields=["job", "state"])


def _busy(task: Task, resource_id: str) -> bool:
    return TaskRun.objects.filter(resource_id=resource_id).filter(
        Q(state=TaskRunState.PENDING_APPROVAL)
        | Q(state__in=[TaskRunState.QUEUED, TaskRunState.RUNNING],
            job__state__in=set(JobState.values) - JOB_TERMINAL_STATES)).exists()


@transaction.atomic
def run_task(slug: str, *, subscription: Subscription, inputs: Any, acting_user) -> TaskRun:
    """Start a run (or hold it for approval). Nothing is recorded when it is refused."""
    subscription = Subscription.objects.select_for_update().select_related("plan", "tenant") \
        .get(pk=subscription.pk)
    task = Task.objects.filter(slug=slug, enabled=True, plans=subscription.plan_id).first()
    if task is None:
        raise NotFound("No such task for this subscription's plan.")
    role = _role(acting_user)
    hidden = any(role in h.roles for h in TaskHiding.objects.filter(
        tenant=subscription.tenant, task=task))
    if role not in task.roles or hidden:
        raise Forbidden("Your role in this organisation may not run this task.")
    entry = TASK_RUNBOOKS[task.runbook]
    stamp = subscription.plan.cloud.stamp
    if missing := stamp.lacks(*entry.runbook.needs):
        # Said now, before a run waits for an approval that could only fail.
        raise Conflict(f"This task cannot run on this subscription's stamp: it has no "
                       f"{', '.join(missing)}.", code=ErrorCode.STAMP_INCAPABLE)
    values, chosen = _validate(task, subscription, inputs)
    target = chosen.get(entry.resource)
    resource_id = str(target.pk) if target is not None else ""
    if task.one_run_per_resource and resource_id and _busy(task, resource_id):
        raise Conflict("Another task is running (or waiting for approval) on this object; "
                       "try again when it has finished.", code=ErrorCode.TASK_BUSY)
    run = TaskRun.objects.create(
        task=task, tenant=subscription.tenant, subscription=subscription, inputs=values,
        resource_id=resource_id, requested_by=acting_user,
        state=TaskRunState.PENDING_APPROVAL if task.requires_approval else TaskRunState.QUEUED,
        diagnostics={"inputs": values, "schema": task.input_schema})
    if not task.requires_approval:
        _launch(run, chosen, acting_user=acting_user)
    events.record(Event.TASK_RUN_REQUESTED, run, acting_user=acting_user,
                  task=task.slug, state=run.state)
    return run


def _decide(run: TaskRun, acting_user) -> TaskRun:
    run = TaskRun.objects.select_for_update().select_related(
        "task", "subscription__plan", "subscription__tenant").get(pk=run.pk)
    if not acting_user.has_perm("provisioning.approve_task_runs", run.tenant):
        raise Forbidden("Only an owner or admin of the organisation decides on runs.")
    if run.state != TaskRunState.PENDING_APPROVAL:
        raise Conflict(f"The run is {run.state}, not waiting for approval.",
                       code=ErrorCode.TASK_RUN_STATE)
    run.approved_by, run.decided_at = acting_user, timezone.now()
    return run


@transaction.atomic
def approve_run(run: TaskRun, *, acting_user) -> TaskRun:
    """Queue a held run. Its inputs are checked again first: a run whose inputs no longer
    hold (the checkpoint went, the VM is busy) ends ``failed``, saying why."""
    run = _decide(run, acting_user)
    run.approve()
    try:
        with transaction.atomic():
            _, chosen = _validate(run.task, run.subscription, run.inputs)
            _launch(run, chosen, acting_user=run.requested_by or acting_user)
    except ServiceError as exc:
        run.refuse()
        run.result = {"message": f"Not run: {exc.detail}", "outputs": {}}
        run.finished_at = timezone.now()
    run.save()
    events.record(Event.TASK_RUN_APPROVED, run, acting_user=acting_user, task=run.task.slug,
                  state=run.state)
    return run


@transaction.atomic
def reject_run(run: TaskRun, *, acting_user) -> TaskRun:
    run = _decide(run, acting_user)
    run.reject()
    run.result = {"message": "Rejected: not run.", "outputs": {}}
    run.finished_at = timezone.now()
    run.save()
    events.record(Event.TASK_RUN_REJECTED, run, acting_user=acting_user, task=run.task.slug)
    return run


# --- what a run says ------------------------------------------------------------------

_FROM_JOB = {
    JobState.QUEUED: TaskRunState.QUEUED,
    JobState.RUNNING: TaskRunState.RUNNING,
    JobState.COMPENSATING: TaskRunState.RUNNING,
    JobState.SUCCEEDED: TaskRunState.SUCCEEDED,
    JobState.FAILED: TaskRunState.FAILED,
    JobState.ROLLED_BACK: TaskRunState.FAILED,
    JobState.CANCELLED: TaskRunState.CANCELLED,
}


def state_filter(state: str) -> Q:
    """The runs whose ``effective_state`` is ``state``, as a query."""
    following = [TaskRunState.QUEUED, TaskRunState.RUNNING, TaskRunState.PENDING_APPROVAL]
    jobs = [job for job, run in _FROM_JOB.items() if run == state]
    held = Q(state=state) & (Q(job__isnull=True) | ~Q(state__in=following))
    return held | Q(state__in=following, job__state__in=jobs)


def effective_state(run: TaskRun) -> str:
    """A queued run follows its job."""
    if run.state in ACTIVE_RUN_STATES and run.job is not None:
        return _FROM_JOB[run.job.state]
    return run.state


def result_of(run: TaskRun) -> dict[str, Any]:
    """The tenant's result: a message and small outputs (never the provider's diagnostics)."""
    if run.result:
        return run.result
    job = run.job
    if job is None:
        return {"message": "Waiting for an owner or admin to approve it."
                if run.state == TaskRunState.PENDING_APPROVAL else "", "outputs": {}}
    if job.state == JobState.SUCCEEDED:
        return job.outputs.get("result") or {"message": "Done.", "outputs": {}}
    if job.state in JOB_TERMINAL_STATES:
        cause = (job.error or "").splitlines()[0] if job.error else "it stopped"
        undone = " What it had changed was undone." if job.state == JobState.ROLLED_BACK else ""
        return {"message": f"The task did not complete: {cause}.{undone}", "outputs": {}}
    return {"message": "Running.", "outputs": {}}


@transaction.atomic
def reveal_sealed(run: TaskRun, user) -> dict[str, Any]:
    """The outputs shown once (a new password): to whoever asked for the run, on their first
    read after it succeeded; then forgotten."""
    if run.requested_by_id is None or run.requested_by_id != getattr(user, "pk", None) \
            or run.job is None or run.job.state != JobState.SUCCEEDED:
        return {}
    locked = TaskRun.objects.select_for_update().get(pk=run.pk)
    sealed = locked.sealed
    if sealed:
        locked.sealed = {}
        locked.save(update_fields=["sealed"])
    return sealed
