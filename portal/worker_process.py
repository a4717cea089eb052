"""What a worker process keeps from one task to the next.

**Its database connection.** Celery's Django fixup closes every connection before and
after each task, unless ``DB_REUSE_MAX`` says otherwise: each job then paid for a new
PostgreSQL session (a backend forked, authenticated and set up), which was most of the
database's work for a short job. A worker follows Django's own rules instead, as a web
process does around a request: before and after each task, ``close_old_connections``
drops a connection older than ``CONN_MAX_AGE``, one left in a transaction, and one that
raised a database error and no longer answers. ``CONN_HEALTH_CHECKS`` checks a reused
connection before a task's first query (a ``SELECT 1``: what a connection that sat idle
needs, the server may have dropped it), except one that a task of the same thread ended
with less than ``FRESH_SECONDS`` ago: at a hundred jobs a second the check was one round
trip in seven. A connection dropped in that moment fails the task's first statement, and
the task is delivered again (``provisioning.run_job`` retries on a database error). A
task that ended in an exception closes its connections outright: nothing it left
half-done is carried into the next.

**Its heap.** What the process loaded before its first task is frozen out of the
collector's reach, as in the web process (``portal.heap``).
"""

import threading
import time

from celery.signals import task_postrun, task_prerun, worker_process_init
from django.db import close_old_connections, connections

__all__ = ["FRESH_SECONDS", "REUSE_MAX"]

# The fixup's own count (in tasks, twice over: it counts both ends): high enough that
# the age and the health of a connection decide when it goes, not a count.
REUSE_MAX = 1_000_000
# A connection a task ended with this recently is taken as alive without asking.
FRESH_SECONDS = 1.0

_monotonic = time.monotonic
# When this thread's last task ended well (a thread pool's threads each have their own
# connections: one thread's task vouches for no other's).
_ended = threading.local()


def _in_worker(task) -> bool:
    """Not a task called in the caller's process (``apply``), whose connection and
    transaction are the caller's."""
    return task is not None and not getattr(task.request, "is_eager", False)


@task_prerun.connect(weak=False)
def _before_task(task=None, **_):
    if not _in_worker(task):
        return
    close_old_connections()
    ended = getattr(_ended, "at", None)
    if ended is not None and _monotonic() - ended < FRESH_SECONDS:
        for conn in connections.all(initialized_only=True):
            if conn.connection is not None:
                # What close_old_connections leaves open has passed its other checks.
                conn.health_check_done = True


@task_postrun.connect(weak=False)
def _after_task(task=None, state=None, **_):
    if not _in_worker(task):
        return
    if state == "SUCCESS":
        close_old_connections()
        _ended.at = _monotonic()
    else:
        connections.close_all()
        _ended.at = None


@worker_process_init.connect(weak=False)
def _freeze_heap(**_):
    from portal import heap  # needs the loaded apps

    heap.freeze()
