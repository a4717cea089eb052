"""What ``bench jobs`` runs: a Celery task that does nothing (the floor of a job on this
broker and worker) and two runbooks, one step that does nothing and one step that asks
the stamp for its health (one fabric round trip, as a real step makes).

Imported by the bench itself and, in a process started with ``BUFFET_BENCH_ENDPOINTS=1``
(the stack's worker), by the portal app; nowhere else.
"""

from celery import shared_task

from provisioning.engine import Runbook, Step, register

__all__ = ["NOOP", "STAMP_CALL", "noop"]


@shared_task(name="portal.bench.noop", ignore_result=True, acks_late=True)
def noop() -> None:
    """Nothing: what Celery alone costs a message."""


NOOP = register(Runbook(name="bench.noop", steps=(Step("Nothing", lambda ctx: None),),
                        description="A step that does nothing (bench jobs)."))
STAMP_CALL = register(Runbook(
    name="bench.stamp-call",
    steps=(Step("Ask the stamp", lambda ctx: ctx.driver.health() and None),),
    description="A step that makes one call to the stamp (bench jobs)."))
