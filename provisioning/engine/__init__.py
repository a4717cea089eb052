"""The runbook engine: declared runbooks, jobs as an outbox, crash-safe execution.

- ``registry``: runbooks and their steps, as declared in code;
- ``outbox``: the web tier's side: ``enqueue`` in the caller's transaction, ``publish``
  after commit, and the provider's ``cancel`` and ``retry`` (audited);
- ``delivery``: publishing to the stamp's queue, the Celery task, and the jobs that wait
  for another (``after``): published when it succeeds, rolled back when it does not;
- ``runner``: the worker's side, step by step, with undo, resumption after a lost worker
  and one transient-retry helper;
- ``relay``: the beat's sweeper, delivering what the outbox could not;
- ``fanout``: a step's per-item fabric calls with bounded concurrency, answers recorded
  on the step's own thread;
- ``clock``: the injectable time of all of them.

Dependencies run one way: relay -> outbox -> delivery -> runner -> registry.
"""

from provisioning.engine.clock import Clock, clock, use_clock
from provisioning.engine.delivery import run, settle
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
    "settle",
    "sweep",
    "use_clock",
]
