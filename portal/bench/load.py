"""Concurrent HTTP clients and what they measured.

``hammer`` runs N client threads, each with its own ``httpx.Client`` (its own
keep-alive connection), until a deadline or a shared request budget runs out, and
records every request's start, latency and status. ``Reaper`` deletes each VM the
clients created once its create job has ended, and follows the delete jobs.
"""

import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from django.db import connection
from tqdm import tqdm

from provisioning.models import JOB_TERMINAL_STATES, Job

__all__ = ["Outcome", "Reaper", "Sample", "hammer", "percentile", "summarise"]

NO_ANSWER = 0  # the status of a request that got no HTTP answer (timeout, refused)
JOIN_GRACE = 90.0  # seconds a client may take past the deadline to finish its request


@dataclass(frozen=True)
class Sample:
    started: float  # wall clock (time.time), so that it compares with database times
    seconds: float
    status: int


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (0 when empty); monotonic in ``p``."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarise(samples: list[Sample], expected: int) -> dict:
    """Rate and latency of the requests answered ``expected``; the others are errors."""
    ok = [s.seconds * 1000 for s in samples if s.status == expected]
    if samples:
        seconds = (max(s.started + s.seconds for s in samples)
                   - min(s.started for s in samples))
    else:
        seconds = 0.0
    return {
        "requests": len(samples),
        "accepted": len(ok),
        "errors": len(samples) - len(ok),
        "statuses": {str(k): v for k, v in sorted(Counter(s.status for s in samples).items())},
        "seconds": round(seconds, 3),
        "per_second": round(len(ok) / seconds, 2) if seconds else 0.0,
        "p50_ms": round(percentile(ok, 50), 1),
        "p95_ms": round(percentile(ok, 95), 1),
        "p99_ms": round(percentile(ok, 99), 1),
    }


class _Budget:
    """Requests left to all clients together (no limit when ``None``)."""

    def __init__(self, limit: int | None):
        self.left = limit
        self._lock = threading.Lock()

    def take(self) -> bool:
        if self.left is None:
            return True
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def hammer(name: str, *, clients: int, duration: float, requests: int | None,
           connect: Callable[[], httpx.Client],
           call: Callable[[httpx.Client, str], httpx.Response]) -> list[Sample]:
    """Run ``call(http, request_name)`` from ``clients`` threads for ``duration`` seconds
    or ``requests`` requests in all, whichever ends first."""
    budget = _Budget(requests)
    halt = threading.Event()
    start = threading.Barrier(clients + 1)
    recorded: list[list[Sample]] = [[] for _ in range(clients)]

    def work(index: int) -> None:
        samples = recorded[index]
        with connect() as http:
            start.wait(timeout=60)
            deadline = time.monotonic() + duration
            while not halt.is_set() and time.monotonic() < deadline and budget.take():
                started, clock = time.time(), time.perf_counter()
                try:
                    status = call(http, f"{name}-{index}-{len(samples)}").status_code
                except httpx.HTTPError:
                    status = NO_ANSWER
                samples.append(Sample(started, time.perf_counter() - clock, status))

    threads = [threading.Thread(target=work, args=(i,), name=f"{name}-{i}", daemon=True)
               for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        start.wait(timeout=60)
        give_up = time.monotonic() + duration + JOIN_GRACE
        with tqdm(desc=name, total=requests, unit="req", disable=None, leave=False) as bar:
            while any(t.is_alive() for t in threads) and time.monotonic() < give_up:
                threads[0].join(timeout=0.25)
                bar.update(sum(map(len, recorded)) - bar.n)
    finally:
        halt.set()  # on an error or Ctrl-C: clients stop after their current request
        for thread in threads:
            thread.join(timeout=1)
    return [sample for samples in recorded for sample in samples]


@dataclass
class Outcome:
    """Jobs a run started: ids by runbook, and the DELETE requests of the reaper."""

    create_jobs: list[str] = field(default_factory=list)
    delete_jobs: list[str] = field(default_factory=list)
    deletes: list[Sample] = field(default_factory=list)


class Reaper:
    """Deletes each created VM once its create job has ended, through the API; then waits
    for the delete jobs to end. With ``hold`` it neither looks nor deletes before
    ``clients_done``, so that the deletes (requests to the same web tier) are not
    measured with the creates; without, it deletes during the creates too, so the run
    holds few VMs at a time.

    It watches job states in the database (one query a poll) rather than over HTTP, so
    that watching adds no load to the web tier being measured.
    """

    POLL = 0.2  # seconds between looks at the jobs

    def __init__(self, connect: Callable[[], httpx.Client], *, hold: bool = False):
        self.connect = connect
        self.hold = hold
        self.created: queue.Queue[tuple[str, str]] = queue.Queue()  # (vm, create job)
        self.outcome = Outcome()
        self.clients_done = threading.Event()
        self.halt = threading.Event()
        self.failure: BaseException | None = None
        self._waiting_create: dict[str, str] = {}  # create job -> vm
        self._waiting_delete: set[str] = set()
        self.thread = threading.Thread(target=self._run, name="reaper", daemon=True)

    @property
    def pending(self) -> int:
        """Jobs not yet seen to end (creates and deletes)."""
        return self.created.qsize() + len(self._waiting_create) + len(self._waiting_delete)

    @property
    def ended(self) -> int:
        outcome = self.outcome
        return (len(outcome.create_jobs) - len(self._waiting_create)
                + len(outcome.delete_jobs) - len(self._waiting_delete))

    def _run(self) -> None:
        try:
            with self.connect() as http:
                while not self.halt.is_set():
                    self._collect()
                    if not self.hold or self.clients_done.is_set():
                        for job_id in self._ended(self._waiting_create):
                            self._delete_vm(http, self._waiting_create.pop(job_id))
                        self._waiting_delete -= set(self._ended(self._waiting_delete))
                    if self.clients_done.is_set() and not self.pending:
                        return
                    self.halt.wait(self.POLL)
        except BaseException as exc:  # noqa: BLE001 - reported by the thread that waits
            self.failure = exc
        finally:
            connection.close()

    def _collect(self) -> None:
        while True:
            try:
                vm_id, job_id = self.created.get_nowait()
            except queue.Empty:
                return
            self.outcome.create_jobs.append(job_id)
            self._waiting_create[job_id] = vm_id

    @staticmethod
    def _ended(job_ids) -> list[str]:
        ids, ended = list(job_ids), []
        for i in range(0, len(ids), 500):
            ended += [str(pk) for pk in Job.objects.filter(
                pk__in=ids[i:i + 500], state__in=JOB_TERMINAL_STATES).values_list("pk",
                                                                                   flat=True)]
        return ended

    def _delete_vm(self, http: httpx.Client, vm_id: str) -> None:
        started, clock = time.time(), time.perf_counter()
        try:
            response = http.delete(f"/api/v1/vms/{vm_id}/")
            status = response.status_code
        except httpx.HTTPError:
            status = NO_ANSWER
        self.outcome.deletes.append(Sample(started, time.perf_counter() - clock, status))
        if status == 202:
            job_id = response.json()["job"]
            self.outcome.delete_jobs.append(job_id)
            self._waiting_delete.add(job_id)
