"""Runbooks as declared in code: a name, a version, an optional input serializer and
ordered steps, each with ``do`` and ``undo``; the registry that the worker looks a job's
runbook up in (a job row stores the runbook's name: that is persistence, not dispatch).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.utils import timezone

from base.errors import Invalid
from fabric.drivers import Capability
from fabric.services import kept_driver
from provisioning.models import Job, JobStep

__all__ = ["Runbook", "Step", "StepContext", "get_runbook", "register", "registered"]


@dataclass(frozen=True)
class Step:
    """One step. ``needs``: the stamp capabilities its fabric calls use. Without them the
    step is skipped when ``optional`` (e.g. a commission's gateway on a libvirt host), and
    otherwise the runbook is refused before any job is queued."""

    name: str
    do: Callable[["StepContext"], dict[str, Any] | None]
    undo: Callable[["StepContext"], None] | None = None
    transient_retries: int = 3
    needs: frozenset[Capability] = frozenset()
    optional: bool = False

    def skipped_on(self, stamp) -> list[str]:
        """What an optional step misses on ``stamp`` (empty: it runs)."""
        return stamp.lacks(*self.needs) if self.optional else []


@dataclass(frozen=True)
class Runbook:
    """A named, versioned sequence of steps.

    ``on_success`` and ``on_rollback`` run inside the transaction that ends the job, so
    resource state (and quota) changes together with the job's final state.
    ``compensate`` False makes a runbook that only moves forward (a decommission, a
    failover): a failure leaves the job ``failed`` at the failed step for a retry.
    ``awaited`` True lets other jobs wait for one of its jobs (``enqueue(after=...)``);
    only the end of such a job looks for jobs waiting.
    """

    name: str
    steps: tuple[Step, ...]
    version: int = 1
    inputs: Any = None  # a DRF serializer class validating the job's inputs
    on_success: Callable[[Job], None] | None = None
    on_rollback: Callable[[Job], None] | None = None
    on_retry: Callable[[Job], None] | None = None
    compensate: bool = True
    awaited: bool = False
    description: str = ""
    max_attempts: int = 5

    @property
    def needs(self) -> frozenset[Capability]:
        """What a stamp must be able to do to run it (its steps that are not optional)."""
        return frozenset().union(*(s.needs for s in self.steps if not s.optional))


_REGISTRY: dict[str, Runbook] = {}


def register(runbook: Runbook) -> Runbook:
    """Make the runbook known to the workers; returns it, for a module-level constant."""
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
    # Calls the stamp lost in a restart (``interrupted``, nothing changed) are made again
    # under the next key, ``<key>~1``, ``~2``...: the stamp keeps the failure on the old
    # one. A resumed step walks the same keys again and finds their operations.
    interruptions: int = 0

    @property
    def inputs(self) -> dict[str, Any]:
        return self.job.inputs

    @property
    def outputs(self) -> dict[str, Any]:
        return self.job.outputs

    def key(self, suffix: str = "") -> str:
        """The idempotency key of a fabric call of this step in this run of the job."""
        base = f"{self.job.pk}:{self.job.run}:{self.step.index}"
        key = f"{base}:{suffix}" if suffix else base
        return f"{key}~{self.interruptions}" if self.interruptions else key

    def log(self, message: str) -> None:
        self.lines.append(f"{timezone.now():%H:%M:%S} {message}")

    @cached_property
    def driver(self):
        return kept_driver(self.job.stamp)
