"""What the pages show of jobs and VM sizes, computed once: jobs with their steps, tones and
progress; a VM's sizes against its image's minimum and its plan's maximum."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from django.apps import apps
from django.urls import reverse

from base.web.ui import duration
from provisioning import engine, sizing
from provisioning.models import JOB_TERMINAL_STATES, Job, JobState, JobStep, StepState
from provisioning.sizing import SizeFault

__all__ = ["JobRow", "SizeCheck", "StepRow", "job_rows", "size_checks"]


# How the pages name each size of a VM, and its unit.
_SIZE_LABELS = {"vcpus": ("vCPUs", ""), "memory_mb": ("Memory", "MB"), "disk_gb": ("Disk", "GB")}


@dataclass(frozen=True)
class SizeCheck:
    """One size of a VM against the image's minimum and the plan's maximum
    (``provisioning.sizing``), in words. It only tells the user before they submit;
    ``provisioning.resources`` decides, with the same rule."""

    check: sizing.BoundCheck

    @property
    def label(self) -> str:
        return _SIZE_LABELS[self.check.field][0]

    @property
    def unit(self) -> str:
        return _SIZE_LABELS[self.check.field][1]

    @property
    def value(self) -> int:
        return self.check.value

    @property
    def problem(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        match self.check.fault:
            case SizeFault.TOO_SMALL:
                return f"the image needs at least {self.check.bound.least:,}{unit}"
            case SizeFault.TOO_LARGE:
                return f"the plan allows at most {self.check.bound.most:,}{unit}"
        return ""

    @property
    def bounds(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.check.bound.least:,}–{self.check.bound.most:,}{unit}"


def size_checks(template, plan, *, vcpus: int, memory_mb: int,
                disk_gb: int | None = None) -> list[SizeCheck]:
    return [SizeCheck(check) for check in sizing.check_size(
        template, plan, vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb)]


# --- Jobs -----------------------------------------------------------------------------

_JOB_TONES = {JobState.QUEUED: "neutral", JobState.RUNNING: "info",
              JobState.SUCCEEDED: "success", JobState.FAILED: "danger",
              JobState.COMPENSATING: "warning", JobState.ROLLED_BACK: "danger",
              JobState.CANCELLED: "neutral"}
_STEP_TONES = {StepState.PENDING: "neutral", StepState.RUNNING: "info",
               StepState.SUCCEEDED: "success", StepState.FAILED: "danger",
               StepState.UNDOING: "warning", StepState.UNDONE: "warning",
               StepState.SKIPPED: "neutral"}
_STEP_DONE = {StepState.SUCCEEDED, StepState.UNDONE, StepState.SKIPPED}
# What a job acts on, as people call it.
_NOUNS = {"provisioning.virtualmachine": "VM", "provisioning.network": "network",
          "provisioning.snapshot": "checkpoint", "plans.subscription": "subscription",
          "provisioning.site": "subscription"}
# A site is where a subscription lives on a stamp: its jobs are the subscription's.
_SUBSCRIPTION_JOBS = {"plans.subscription", "provisioning.site"}


@dataclass(frozen=True)
class StepRow:
    step: JobStep

    @property
    def tone(self) -> str:
        return _STEP_TONES.get(self.step.state, "neutral")

    @property
    def duration(self) -> str:
        end = self.step.finished_at
        if end is None and self.step.state not in (StepState.RUNNING, StepState.UNDOING):
            return ""
        return duration(self.step.started_at, end)


@dataclass
class JobRow:
    """A job as the pages show it: what it acts on, how far it got, its steps."""

    job: Job
    resource: object | None = None
    steps: list[JobStep] = field(default_factory=list)

    @property
    def noun(self) -> str:
        return _NOUNS.get(self.job.resource_type, self.job.resource_type.rpartition(".")[2])

    @property
    def name(self) -> str:
        """The name of what the job acts on (jobs of a site: its subscription's)."""
        if self.job.resource_type in _SUBSCRIPTION_JOBS and self.job.subscription_id:
            return self.job.subscription.name
        return getattr(self.resource, "name", "")

    @property
    def title(self) -> str:
        """"Create VM web-1", "Commission subscription prod"."""
        action = self.job.runbook.rpartition(".")[2].replace("-", " ").capitalize()
        return " ".join(filter(None, [action, self.noun, self.name]))

    @property
    def description(self) -> str:
        runbook = engine.registered().get(self.job.runbook)
        return runbook.description if runbook else ""

    @property
    def tone(self) -> str:
        return _JOB_TONES.get(self.job.state, "neutral")

    @property
    def finished(self) -> bool:
        return self.job.state in JOB_TERMINAL_STATES

    @property
    def done(self) -> int:
        return sum(step.state in _STEP_DONE for step in self.steps)

    @property
    def percent(self) -> int:
        if not self.steps:
            return 100 if self.finished else 0
        return round(100 * self.done / len(self.steps))

    @property
    def current(self) -> JobStep | None:
        """The step being done or undone now."""
        return next((s for s in self.steps
                     if s.state in (StepState.RUNNING, StepState.UNDOING)), None)

    @cached_property
    def step_rows(self) -> list[StepRow]:
        return [StepRow(step) for step in self.steps]

    @property
    def duration(self) -> str:
        return duration(self.job.started_at, self.job.finished_at)

    @property
    def resource_gone(self) -> bool:
        return getattr(self.resource, "state", "") == "deleted"

    @property
    def tenant_url(self) -> str:
        """Where the tenant portal shows what the job acts on ('' once it is gone)."""
        resource = self.resource
        if resource is None or self.resource_gone:
            return ""
        match self.job.resource_type:
            case "provisioning.virtualmachine":
                return reverse("vm_detail", args=[resource.pk])
            case "provisioning.snapshot":
                return reverse("vm_detail", args=[resource.vm_id])
            case "provisioning.network":
                return f"{reverse('network_list')}?subscription={resource.subscription_id}"
            case "plans.subscription" | "provisioning.site":
                return reverse("subscription_detail", args=[self.job.subscription_id])
        return ""


def job_rows(jobs: Iterable[Job]) -> list[JobRow]:
    """Jobs with their (prefetched) steps and the objects they act on, fetched in one
    query per kind of object, however many jobs there are."""
    jobs = list(jobs)
    wanted: dict[str, set[str]] = defaultdict(set)
    for job in jobs:
        if job.resource_type and job.resource_id:
            wanted[job.resource_type].add(job.resource_id)
    found: dict[tuple[str, str], object] = {}
    for label, ids in wanted.items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        for obj in model._default_manager.filter(pk__in=ids):
            found[(label, str(obj.pk))] = obj
    return [JobRow(job, found.get((job.resource_type, job.resource_id)), list(job.steps.all()))
            for job in jobs]
