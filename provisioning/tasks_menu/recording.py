"""The operator's diagnostics of a task run: every fabric call of its steps, with its
arguments, timing and answer (or error), kept on the run for the provider only."""

import dataclasses
import enum
import time
from datetime import date, datetime
from functools import wraps
from typing import Any

from django.db import transaction
from django.utils import timezone

from base.errors import Invalid
from fabric.services import driver_for
from provisioning.models import TaskRun, TaskRunState

__all__ = ["RecordingDriver", "task_run_of", "task_step"]

_TEXT_LIMIT = 500


def _plain(value: Any) -> Any:
    """A JSON-safe, bounded copy of a call's argument or answer."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, str) and len(value) > _TEXT_LIMIT:
        return value[:_TEXT_LIMIT] + f"... ({len(value)} characters)"
    return value


class RecordingDriver:
    """Wraps a stamp driver: each method call is recorded in ``calls``."""

    def __init__(self, driver, calls: list[dict[str, Any]], step: str):
        self._driver, self._calls, self._step = driver, calls, step

    def __getattr__(self, name: str):
        attr = getattr(self._driver, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        @wraps(attr)
        def call(*args, **kwargs):
            entry = {"step": self._step, "call": name, "at": timezone.now().isoformat(),
                     "arguments": _plain({**dict(enumerate(args)), **kwargs})}
            started = time.monotonic()
            try:
                answer = attr(*args, **kwargs)
            except Exception as exc:
                entry.update(seconds=round(time.monotonic() - started, 4),
                             error=f"{type(exc).__name__}: {exc}")
                self._calls.append(entry)
                raise
            entry.update(seconds=round(time.monotonic() - started, 4), answer=_plain(answer))
            self._calls.append(entry)
            return answer

        return call


def task_run_of(ctx) -> TaskRun:
    return TaskRun.objects.select_related("task", "subscription__plan").get(job=ctx.job)


def _keep(run_id, calls: list[dict[str, Any]]) -> None:
    if not calls:
        return
    with transaction.atomic():
        run = TaskRun.objects.select_for_update().get(pk=run_id)
        run.diagnostics = {**run.diagnostics,
                           "fabric_calls": [*run.diagnostics.get("fabric_calls", []), *calls]}
        run.save(update_fields=["diagnostics"])


def task_step(fn):
    """A task runbook's ``do`` or ``undo``: the run follows its job into ``running``, a run
    past its task's timeout stops (and its finished steps are undone), and every fabric
    call is recorded on the run."""

    @wraps(fn)
    def step(ctx):
        run = task_run_of(ctx)
        undoing = fn.__name__.startswith("undo")
        if not undoing:
            TaskRun.objects.filter(pk=run.pk, state=TaskRunState.QUEUED).update(
                state=TaskRunState.RUNNING)
            started = ctx.job.started_at or timezone.now()
            if (timezone.now() - started).total_seconds() > run.task.timeout_seconds:
                raise Invalid(f"The task ran longer than its timeout of "
                              f"{run.task.timeout_seconds} seconds.")
        calls: list[dict[str, Any]] = []
        ctx.__dict__["driver"] = RecordingDriver(driver_for(ctx.job.stamp), calls,
                                                 ctx.step.name)
        try:
            return fn(ctx)
        finally:
            _keep(run.pk, calls)

    return step
