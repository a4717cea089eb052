"""What the templates draw, computed once: quota and capacity bars, the quota a request
would use, activity lines, jobs with their steps.

Templates stay free of arithmetic; these presenters turn ledger rows into the numbers,
units and tones a bar needs.
"""

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from plans.models import QuotaDimension
from portal.models import AuditEvent
from provisioning import engine
from provisioning.models import JOB_TERMINAL_STATES, Job, JobState, JobStep, StepState

__all__ = ["Bar", "JobRow", "RequestBar", "SizeCheck", "activity", "bars", "duration",
           "job_rows", "ledger_bars", "request_bars", "size_checks", "stamp_bars"]

# Memory is kept in MB; people read GB.
_UNITS = {
    "vcpus": ("vCPUs", "", 1),
    "memory_mb": ("Memory", "GB", 1024),
    "storage_gb": ("Storage", "GB", 1),
    "vms": ("VMs", "", 1),
    "networks": ("Networks", "", 1),
    "snapshots": ("Snapshots", "", 1),
}


def _amount(value: int, divisor: int) -> str:
    if divisor == 1:
        return f"{value:,}"
    scaled = value / divisor
    return f"{scaled:,.0f}" if scaled == int(scaled) else f"{scaled:,.1f}"


@dataclass(frozen=True)
class Bar:
    """One dimension: ``used`` of ``limit``, with the width and tone of its bar."""

    dimension: str
    label: str
    used: int
    limit: int
    unit: str = ""
    divisor: int = 1

    @property
    def percent(self) -> int:
        if self.limit <= 0:
            return 100 if self.used > 0 else 0
        return min(100, round(100 * self.used / self.limit))

    @property
    def tone(self) -> str:
        """Bootstrap colour: the closer to the limit, the louder."""
        if self.used > self.limit or self.percent >= 90:
            return "danger"
        return "warning" if self.percent >= 70 else "primary"

    @property
    def used_text(self) -> str:
        return _amount(self.used, self.divisor)

    @property
    def limit_text(self) -> str:
        return _amount(self.limit, self.divisor)

    @property
    def summary(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.used_text} of {self.limit_text}{unit}"


def _bar(dimension: str, used: int, limit: int) -> Bar:
    label, unit, divisor = _UNITS.get(dimension, (dimension, "", 1))
    return Bar(dimension, label, used, limit, unit, divisor)


def bars(usage: Mapping[str, Mapping[str, int]]) -> list[Bar]:
    """``{"vcpus": {"used", "limit"}, ...}`` (``plans.quota.summary``) as bars, in the
    order of the quota dimensions."""
    order = [d for d in QuotaDimension.values if d in usage] + [
        d for d in usage if d not in QuotaDimension.values]
    return [_bar(d, usage[d]["used"], usage[d]["limit"]) for d in order]


def ledger_bars(rows: Iterable) -> list[Bar]:
    """Ledger rows (``dimension``, ``used``, ``limit``) as bars."""
    return bars({row.dimension: {"used": row.used, "limit": row.limit} for row in rows})


def stamp_bars(capacity: Mapping) -> list[Bar]:
    """What a stamp reported at its last check: allocated of its capacity."""
    total, allocated = capacity.get("capacity") or {}, capacity.get("allocated") or {}
    return bars({d: {"used": allocated.get(d, 0), "limit": n} for d, n in total.items()})


_VM_WORD = re.compile(r"\bvm\b", re.IGNORECASE)


@dataclass(frozen=True)
class ActivityLine:
    event: AuditEvent
    title: str


def activity(events: Iterable[AuditEvent]) -> list[ActivityLine]:
    """Audit rows as sentences: ``subscription.created`` reads "Subscription created"."""
    return [ActivityLine(e, _VM_WORD.sub("VM", e.event.replace(".", " ").replace("_", " ")
                                         .capitalize()))
            for e in events]


# --- What a request would use ---------------------------------------------------------

@dataclass(frozen=True)
class RequestBar:
    """One dimension before a request is sent: ``used`` now and ``requested`` on top,
    of ``limit``. Over the limit, the requested part turns red."""

    dimension: str
    label: str
    used: int
    requested: int
    limit: int
    unit: str = ""
    divisor: int = 1

    @property
    def after(self) -> int:
        return self.used + self.requested

    @property
    def over(self) -> bool:
        return self.after > self.limit

    def _percent(self, value: int) -> int:
        if self.limit <= 0:
            return 100 if value > 0 else 0
        return min(100, round(100 * value / self.limit))

    @property
    def used_percent(self) -> int:
        return self._percent(self.used)

    @property
    def requested_percent(self) -> int:
        """The requested part, drawn after the used part and never past the end."""
        return min(100 - self.used_percent, self._percent(self.after) - self.used_percent)

    @property
    def tone(self) -> str:
        return "danger" if self.over else "primary"

    def _text(self, value: int) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{_amount(value, self.divisor)}{unit}"

    @property
    def summary(self) -> str:
        return (f"{_amount(self.used, self.divisor)} used + {_amount(self.requested, self.divisor)}"
                f" of {self._text(self.limit)}")

    @property
    def note(self) -> str:
        if self.over:
            return f"{self._text(self.after - self.limit)} over the limit"
        return f"{self._text(self.limit - self.after)} left after this"


def request_bars(usage: Mapping[str, Mapping[str, int]],
                 requested: Mapping[str, int]) -> list[RequestBar]:
    """``plans.quota.summary`` and a request's amounts, for the dimensions it touches."""
    rows = []
    for dimension in QuotaDimension.values:
        if dimension not in requested:
            continue
        label, unit, divisor = _UNITS.get(dimension, (dimension, "", 1))
        rows.append(RequestBar(dimension, label, usage[dimension]["used"],
                               max(0, requested[dimension]), usage[dimension]["limit"],
                               unit, divisor))
    return rows


@dataclass(frozen=True)
class SizeCheck:
    """One size of a VM against the image's minimum and the plan's maximum. It only
    tells the user before they submit; ``provisioning.resources`` decides."""

    label: str
    value: int
    least: int
    most: int
    unit: str = ""

    @property
    def problem(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.value < self.least:
            return f"the image needs at least {self.least:,}{unit}"
        if self.value > self.most:
            return f"the plan allows at most {self.most:,}{unit}"
        return ""

    @property
    def bounds(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.least:,}–{self.most:,}{unit}"


def size_checks(template, plan, *, vcpus: int, memory_mb: int,
                disk_gb: int | None = None) -> list[SizeCheck]:
    checks = [SizeCheck("vCPUs", vcpus, template.min_vcpus, plan.max_vm_vcpus),
              SizeCheck("Memory", memory_mb, template.min_memory_mb, plan.max_vm_memory_mb, "MB")]
    if disk_gb is not None:
        checks.append(SizeCheck("Disk", disk_gb, template.min_disk_gb, plan.max_vm_disk_gb, "GB"))
    return checks


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


def duration(start: datetime | None, end: datetime | None) -> str:
    """"0.4 s", "12 s", "3 min 5 s", "2 h 10 min"; running if ``end`` is None."""
    if start is None:
        return ""
    seconds = max(timedelta(0), (end or timezone.now()) - start).total_seconds()
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


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
