"""The runbook engine: declared runbooks, jobs as an outbox, crash-safe execution.

- ``registry``: runbooks and their steps, as declared in code;
- ``outbox``: the web tier's side: ``enqueue`` in the caller's transaction, ``publish``
  after commit, and the provider's ``cancel`` and ``retry`` (audited);
- ``runner`` (with ``delivery``, its Celery task): the worker's side, step by step, with
  undo, resumption after a lost worker and one transient-retry helper;
- ``relay``: the beat's sweeper, delivering what the outbox could not;
- ``clock``: the injectable time of all of them.

Dependencies run one way: relay -> outbox -> delivery -> runner -> registry.
"""

from provisioning.engine.clock import Clock, clock, use_clock
from provisioning.engine.outbox import cancel, enqueue, publish, retry
from provisioning.engine.registry import (
    Runbook,
    Step,
    StepContext,
    get_runbook,
    register,
    registered,
)
from provisioning.engine.relay import SweepReport, sweep
from provisioning.engine.runner import run

__all__ = [
    "Clock",
    "Runbook",
    "Step",
    "StepContext",
    "SweepReport",
    "cancel",
    "clock",
    "enqueue",
    "get_runbook",
    "publish",
    "register",
    "registered",
    "retry",
    "run",
    "sweep",
    "use_clock",
]
