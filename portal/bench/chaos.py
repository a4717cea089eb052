"""The ``chaos`` run: VM jobs through the API while processes die, then a reconciliation.

One run, one stack (``Stack``: a broker when it is one the run may restart, stampsim, a
Celery worker, gunicorn), on the database of the current settings:

1. clients, each with its own token connection, create a VM, take a checkpoint of it and
   delete it, again and again, until N jobs have been asked for; every POST carries an
   ``Idempotency-Key`` and is sent again with the same key when no answer came;
2. meanwhile faults are injected in turn, one every ``fault_every`` seconds, each
   printed as it happens (``FAULTS``);
3. the run's relay sweeps as beat does (every ``SWEEP_EVERY`` seconds), and watches for
   jobs waiting while a worker process has nothing to do;
4. after the clients, everything is given until the drain deadline to end; then the
   portal is reconciled against the stamp (``reconcile``) and the report printed.

Every count of the report should be zero (``Report.failures``).
"""

import contextlib
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.db.models import Sum
from django.test.utils import override_settings
from tqdm import tqdm

from fabric.models import Stamp
from plans.models import QuotaLedger, Subscription
from portal.bench.stack import Child, Stack, StackFailed
from portal.bench.world import ROOM, VM_SIZE, World, build_world, client
from provisioning import engine
from provisioning.models import (
    JOB_TERMINAL_STATES,
    Job,
    JobState,
    Network,
    Snapshot,
    SnapshotState,
    VirtualMachine,
    VmState,
)

__all__ = ["FAULTS", "Report", "render", "run"]

FAULTS = ("pool-child", "stampsim-restart", "worker-main", "stampsim-500", "stampsim-hang",
          "broker-restart", "pg-kill")
BROKERS = ("settings", "embedded", "redis-server")
SWEEP_EVERY = 1.0  # seconds between two sweeps of the run's relay
FAULT_SPAN = 3.0  # seconds a stampsim that answers 500 or hangs stays so
# The engine's clocks, short so that a run ends in minutes: the lease of a silent
# worker's job, and the grace before the relay publishes what the outbox did not.
LEASE_SECONDS = 6
OUTBOX_GRACE_SECONDS = 2
STAMP_LATENCY_MS = 30  # operations are in flight for a while, as on a real fabric
RETRY_FOR = 120.0  # seconds a client sends a request again that got no answer


@dataclass
class Report:
    figures: dict = field(default_factory=dict)

    @property
    def failures(self) -> dict[str, int]:
        """The counts that must be zero."""
        f = self.figures
        return {name: f[name] for name in ("not_asked", "not_ended", "run_twice",
                                           "leaked_on_stamp",
                                           "missing_on_stamp", "quota_drift", "client_errors")
                if f[name]}


class Clients:
    """``clients`` threads, each looping create VM -> checkpoint -> delete VM, until the
    run has asked for ``jobs`` jobs. Job ids go to ``jobs``; requests that ended without
    a usable answer after ``RETRY_FOR`` seconds are counted in ``errors``."""

    def __init__(self, world: World, clients: int, jobs: int, wait_for: float):
        self.world, self.target, self.wait_for = world, jobs, wait_for
        self.jobs: list[str] = []
        self.errors: Counter[str] = Counter()
        self.halt = threading.Event()
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True,
                                         name=f"chaos-client-{i}") for i in range(clients)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    @property
    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    @property
    def all_asked(self) -> bool:
        with self._lock:
            return len(self.jobs) >= self.target and "" not in self.jobs

    def _take(self) -> bool:
        with self._lock:
            if len(self.jobs) >= self.target:
                return False
            self.jobs.append("")  # a place, filled in once the job is known
            return True

    def _record(self, job_id: str | None, what: str) -> None:
        with self._lock:
            index = self.jobs.index("")
            if job_id is None:
                del self.jobs[index]
                self.errors[what] += 1
            else:
                self.jobs[index] = job_id

    def _run(self, index: int) -> None:
        try:
            with client(self.world.url, self.world.tenant_token, timeout=30) as http:
                n = 0
                while not self.halt.is_set() and self._take():
                    n += 1
                    name = f"chaos-{index}-{n}-{uuid.uuid4().hex[:4]}"
                    created = self._post(http, "/api/v1/vms/", self.world.vm(name))
                    self._record(created and created["job"], "vm create")
                    if not created:
                        continue
                    vm_id = created["id"]
                    self._wait(created["job"])
                    if self._take():
                        taken = self._post(http, f"/api/v1/vms/{vm_id}/snapshots/",
                                           {"name": f"{name}-cp"})
                        self._record(taken and taken["job"], "snapshot")
                        if taken:
                            self._wait(taken["job"])
                    if self._take():
                        deleted = self._delete(http, vm_id)
                        self._record(deleted, "vm delete")
                        if deleted:
                            self._wait(deleted)
        finally:
            connection.close()

    def _post(self, http: httpx.Client, path: str, body: dict) -> dict | None:
        """POST until a 202, with one Idempotency-Key; None when no 202 came in time."""
        key = uuid.uuid4().hex
        deadline = time.monotonic() + RETRY_FOR
        while time.monotonic() < deadline and not self.halt.is_set():
            try:
                response = http.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.HTTPError:
                time.sleep(0.2)  # retry pause, bounded by the deadline
                continue
            if response.status_code == 202:
                return response.json()
            if response.status_code < 500 and response.status_code != 429:
                return None  # a refusal: sending it again would not change it
            time.sleep(0.2)  # retry pause, bounded by the deadline
        return None

    def _delete(self, http: httpx.Client, vm_id: str) -> str | None:
        """DELETE until a 202 (its job) or until the VM is found being deleted (a lost
        answer to an earlier try: that try's job)."""
        deadline = time.monotonic() + RETRY_FOR
        while time.monotonic() < deadline and not self.halt.is_set():
            try:
                response = http.delete(f"/api/v1/vms/{vm_id}/")
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == 202:
                return response.json()["job"]
            try:
                job = Job.objects.filter(runbook="vm.delete", resource_id=vm_id).order_by(
                    "-created_at").values_list("pk", flat=True).first()
            except DatabaseError:  # as in _wait
                connection.close()
                job = None
            if job is not None:
                return str(job)
            if response is not None and response.status_code < 500 \
                    and response.status_code not in (409, 429):
                return None
            time.sleep(0.2)  # retry pause, bounded by the deadline
        return None

    def _wait(self, job_id: str) -> None:
        """Until the job ends, ``wait_for`` seconds pass or the run halts (the report
        judges what did not end)."""
        deadline = time.monotonic() + self.wait_for
        while not self.halt.is_set() and time.monotonic() < deadline:
            try:
                if Job.objects.filter(pk=job_id, state__in=JOB_TERMINAL_STATES).exists():
                    return
            except DatabaseError:  # its connection was killed: the next look reconnects
                connection.close()
            self.halt.wait(0.2)


class Watch:
    """The run's relay (``engine.sweep`` every ``SWEEP_EVERY`` s, as beat runs it) and the
    watch for jobs waiting while a worker process is idle.

    A job *waits* when it is ready to run (queued and not behind another job) or when it
    is running but its worker has gone silent (no heartbeat for two heartbeat periods). A
    worker process is *idle* when fewer jobs are heard running than the worker has
    processes. ``longest_idle_wait`` is the longest any job waited in that state at once.
    """

    def __init__(self, concurrency: int, say: Callable[[str], object]):
        self.concurrency = concurrency
        self.say = say
        self.halt = threading.Event()
        self.longest_idle_wait = 0.0
        self.sweeps = 0
        self.sweep_errors = 0
        self._idle_since: dict[str, float] = {}
        self.thread = threading.Thread(target=self._run, daemon=True, name="chaos-relay")

    def _run(self) -> None:
        next_sweep = 0.0
        try:
            while not self.halt.is_set():
                if time.monotonic() >= next_sweep:
                    try:
                        engine.sweep()
                        self.sweeps += 1
                    except Exception as exc:  # noqa: BLE001 - the database may be cut off
                        self.sweep_errors += 1
                        self.say(f"  relay: sweep failed ({type(exc).__name__}); again soon")
                        connection.close()
                    next_sweep = time.monotonic() + SWEEP_EVERY
                try:
                    self._look()
                except Exception:  # noqa: BLE001 - as above; the next look sees it again
                    connection.close()
                self.halt.wait(0.25)
        finally:
            connection.close()

    def _look(self) -> None:
        now, clock = engine.clock.now(), time.monotonic()
        silent = now - timedelta(seconds=2 * max(1.0, LEASE_SECONDS / 3) + 0.5)
        active = Job.objects.exclude(state__in=JOB_TERMINAL_STATES).exclude(
            state=JobState.QUEUED, after__isnull=False, after__state__in=[
                JobState.QUEUED, JobState.RUNNING, JobState.COMPENSATING])
        rows = list(active.values_list("pk", "state", "heartbeat_at"))
        heard = sum(1 for _, state, beat in rows
                    if state != JobState.QUEUED and beat is not None and beat >= silent)
        waiting = {str(pk) for pk, state, beat in rows
                   if state == JobState.QUEUED or beat is None or beat < silent}
        if heard >= self.concurrency:
            waiting = set()
        for job_id in list(self._idle_since):
            if job_id not in waiting:
                del self._idle_since[job_id]
        for job_id in waiting:
            since = self._idle_since.setdefault(job_id, clock)
            self.longest_idle_wait = max(self.longest_idle_wait, clock - since)


class Injector:
    """Injects the faults in turn, one every ``every`` seconds, and says each one."""

    def __init__(self, stack: Stack, faults: list[str], every: float, queues: list[str],
                 say: Callable[[str], object], seed: int):
        self.stack, self.faults, self.every, self.queues = stack, faults, every, queues
        self.say = say
        self.random = random.Random(seed)
        self.halt = threading.Event()
        self.injected: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.failure: BaseException | None = None
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True, name="chaos-faults")

    def _run(self) -> None:
        try:
            turn = 0
            while not self.halt.wait(self.every):
                fault = self.faults[turn % len(self.faults)]
                turn += 1
                done = getattr(self, "_" + fault.replace("-", "_"))()
                elapsed = time.monotonic() - self.started
                if done:
                    self.injected[fault] += 1
                    self.say(f"  t+{elapsed:5.1f}s fault {fault}: {done}")
                else:
                    self.skipped[fault] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the run
            self.failure = exc
        finally:
            connection.close()

    def _worker(self) -> Child:
        return next(c for c in self.stack.children if c.name == "worker")

    def _pool_child(self) -> str:
        pids = _children_of(self._worker().process.pid)
        if not pids:
            return ""
        pid = self.random.choice(pids)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return f"SIGKILL pool process {pid}"

    def _worker_main(self) -> str:
        worker = self._worker()
        pid = worker.process.pid
        os.kill(pid, signal.SIGKILL)
        worker.process.wait(10)
        self.stack.restart(worker)  # its pool goes with it, as a supervisor does
        return f"SIGKILL worker main process {pid}; started again as {worker.process.pid}"

    def _stampsim_restart(self) -> str:
        stamp = self.stack.stampsim
        old = stamp.process.pid
        stamp.kill()
        stamp.start(timeout=60)
        return f"SIGKILL stampsim {old}; started again on the same data as {stamp.process.pid}"

    def _stampsim_500(self) -> str:
        self._for_a_while({"fail_rate": {"*": 1.0}, "fail_status": 500},
                          {"fail_rate": {}, "fail_status": 503})
        return f"stampsim answered every call 500 for {FAULT_SPAN:g}s"

    def _stampsim_hang(self) -> str:
        self._for_a_while({"hang_ms": 60_000}, {"hang_ms": 0})
        return f"stampsim held every call unanswered for {FAULT_SPAN:g}s"

    def _for_a_while(self, fault: dict, cleared: dict) -> None:
        stamp = self.stack.stampsim
        status, answer = stamp.request("POST", "/v1/admin/faults", fault)
        if status != 200:
            raise StackFailed(f"stampsim refused the fault {fault}: {answer}")
        self.halt.wait(FAULT_SPAN)
        stamp.request("POST", "/v1/admin/faults", cleared)

    def _broker_restart(self) -> str:
        broker = next((c for c in self.stack.children if c.name == "broker"), None)
        if broker is None:
            return ""  # not a broker this run started: it restarts only its own
        pid = broker.process.pid
        self.stack.restart(broker)
        return f"SIGKILL broker {pid}; started again as {broker.process.pid}"

    def _pg_kill(self) -> str:
        if connection.vendor != "postgresql":
            return ""
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            (killed,) = cursor.fetchone()
        return f"pg_terminate_backend on {killed} connections to {connection.settings_dict['NAME']}"


def _children_of(pid: int) -> list[int]:
    """The pids of a process's children (of any of its threads), from /proc."""
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def run(*, jobs: int, clients: int, fault_every: float, faults: list[str], broker: str,
        worker_concurrency: int, drain_timeout: float, seed: int,
        say: Callable[[str], object] = print) -> Report:
    """Run the chaos; its report."""
    name = f"chaos-{uuid.uuid4().hex[:6]}"
    run_dir = Path(settings.VAR_DIR) / "chaos" / name
    say(f"Run {name}: migrating; logs in {run_dir}")
    call_command("migrate", interactive=False, verbosity=0)
    env = {"BUFFET_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
           "BUFFET_OUTBOX_GRACE_SECONDS": str(OUTBOX_GRACE_SECONDS)}
    engine_settings = override_settings(BUFFET_JOB_LEASE_SECONDS=LEASE_SECONDS,
                                        BUFFET_OUTBOX_GRACE_SECONDS=OUTBOX_GRACE_SECONDS)
    with Stack(run_dir, worker_concurrency=worker_concurrency, env=env) as stack, \
            engine_settings:
        broker_name = _start_broker(stack, broker)
        stack.start_stampsim(name, "--latency-ms", str(STAMP_LATENCY_MS), "--no-fsync",
                             "--vcpus", str(ROOM * VM_SIZE["vcpus"]),
                             "--memory-mb", str(ROOM * VM_SIZE["memory_mb"]),
                             "--storage-gb", str(ROOM * VM_SIZE["disk_gb"]),
                             "--max-vms", str(ROOM), "--seed", str(seed))
        queues = ["default", Stamp(name=name).queue]
        stack.start_worker(queues)
        stack.start_web()
        say(f"Stack up at {stack.url} ({connection.vendor} database, {broker_name} broker); "
            "building the catalog and a subscription")
        world = build_world(stack, name, snapshots=ROOM)
        connection.close()  # the threads use connections of their own
        watch = Watch(worker_concurrency, say)
        injector = Injector(stack, faults, fault_every, queues, say, seed)
        load = Clients(world, clients, jobs, wait_for=drain_timeout)
        say(f"{jobs} jobs from {clients} clients; a fault every {fault_every:g}s, in turn: "
            + ", ".join(faults))
        started = time.monotonic()
        watch.thread.start()
        load.start()
        injector.thread.start()
        deadline = None
        try:
            with tqdm(desc="jobs ended", total=jobs, unit="job", disable=None,
                      leave=False) as bar:
                while True:
                    if injector.failure is not None:
                        raise StackFailed(f"injecting a fault failed: {injector.failure!r}")
                    if deadline is None and (load.all_asked or not load.alive):
                        injector.halt.set()  # the drain runs without new faults
                        deadline = time.monotonic() + drain_timeout
                    ended = _ended(load.jobs)
                    bar.update(ended - bar.n)
                    if not load.alive and ended >= len([j for j in load.jobs if j]):
                        break
                    if deadline is not None and time.monotonic() > deadline:
                        break
                    time.sleep(0.5)  # progress interval; the loop is bounded by the deadline
        finally:
            load.halt.set()
            injector.halt.set()
            injector.thread.join(timeout=FAULT_SPAN + 90)
            for thread in load.threads:
                thread.join(timeout=10)
        _clear_faults(stack)
        seconds = time.monotonic() - started
        watch.halt.set()
        watch.thread.join(timeout=30)
        figures = reconcile(stack, world, [j for j in load.jobs if j])
        figures.update({
            "database": connection.vendor, "broker": broker_name, "jobs_asked": jobs,
            "not_asked": jobs - figures["jobs"],
            "clients": clients, "worker_concurrency": worker_concurrency,
            "seconds": round(seconds, 1), "drain_timeout_s": drain_timeout,
            "faults": dict(injector.injected), "faults_skipped": dict(injector.skipped),
            "client_errors": sum(load.errors.values()),
            "client_errors_by_request": dict(load.errors),
            "longest_idle_wait_s": round(watch.longest_idle_wait, 1),
            "sweeps": watch.sweeps,
        })
    return Report(figures)


def _start_broker(stack: Stack, choice: str) -> str:
    """Start the broker the run asked for and point this process and the stack at it; its
    name in the report."""
    if choice == "settings":
        if stack.start_broker() is not None:
            return "embedded"
        return urlsplit(settings.CELERY_BROKER_URL).scheme
    if choice == "embedded":
        stack.start_broker(stack.run_dir / "broker")
    else:
        stack.start_redis()
    stack.extra_env["CELERY_BROKER_URL"] = stack.broker_url
    _publish_to(stack.broker_url)
    return "embedded" if choice == "embedded" else "redis-server"


def _publish_to(url: str) -> None:
    """Make this process publish to ``url``: its connections are made on first use, and
    the run has published nothing yet."""
    from portal.celery import app

    app.conf.update(broker_url=url, broker_read_url=url, broker_write_url=url)
    app._pool = None
    app.amqp._producer_pool = None


def _clear_faults(stack: Stack) -> None:
    with contextlib.suppress(Exception):
        stack.stampsim.request("POST", "/v1/admin/faults",
                               {"fail_rate": {}, "hang_ms": 0, "fail_status": 503})


def _ended(job_ids: list[str]) -> int:
    ids = [j for j in job_ids if j]
    try:
        return sum(Job.objects.filter(pk__in=ids[i:i + 500], state__in=JOB_TERMINAL_STATES)
                   .count() for i in range(0, len(ids), 500))
    except Exception:  # noqa: BLE001 - a killed connection; the next look counts again
        connection.close()
        return 0


def reconcile(stack: Stack, world: World, job_ids: list[str]) -> dict:
    """Portal against stamp, after the run."""
    rows = []
    for i in range(0, len(job_ids), 500):
        rows += Job.objects.filter(pk__in=job_ids[i:i + 500]).values_list("pk", "state")
    states = Counter(state for _, state in rows)
    not_ended = sorted(str(pk) for pk, state in rows if state not in JOB_TERMINAL_STATES)

    status, inventory = stack.stampsim.request("GET", "/v1/inventory", timeout=30)
    status_ops, operations = stack.stampsim.request("GET", "/v1/admin/operations", timeout=30)
    if status != 200 or status_ops != 200:
        raise StackFailed(f"stampsim did not give its inventory: {inventory} {operations}")
    subscription = Subscription.objects.get(pk=world.subscription)
    vms = VirtualMachine.objects.filter(subscription=subscription)
    portal_vms = {vm.fabric_id for vm in vms.exclude(state=VmState.DELETED) if vm.fabric_id}
    stamp_vms = {vm["id"] for vm in inventory["vms"]}
    snapshots = Snapshot.objects.filter(vm__subscription=subscription)
    portal_checkpoints = {s.fabric_id for s in snapshots.exclude(state=SnapshotState.DELETED)
                          if s.fabric_id}
    stamp_checkpoints = {c["id"] for c in inventory["checkpoints"]}
    leaked = sorted(stamp_vms - portal_vms) + sorted(
        c for c in stamp_checkpoints - portal_checkpoints)
    missing = sorted(portal_vms - stamp_vms) + sorted(portal_checkpoints - stamp_checkpoints)
    return {
        "jobs": len(rows),
        "states": dict(sorted(states.items())),
        "not_ended": len(not_ended),
        "not_ended_ids": not_ended[:20],
        "run_twice": len(_applied_twice(operations["operations"])),
        "run_twice_keys": _applied_twice(operations["operations"])[:20],
        "leaked_on_stamp": len(leaked),
        "leaked_ids": leaked[:20],
        "missing_on_stamp": len(missing),
        "missing_ids": missing[:20],
        **_quota(subscription),
    }


def _applied_twice(operations: list[dict]) -> list[str]:
    """Step keys (``job:run:step[:suffix]``) for which the stamp applied more than one
    operation: keys the engine derives again for one step (``key~n``) count as that
    step's."""
    applied = Counter(op["key"].split("~")[0] for op in operations
                      if op["state"] == "succeeded" and op["key"])
    return sorted(key for key, n in applied.items() if n > 1)


def _quota(subscription: Subscription) -> dict:
    """The quota ledger against what the subscription's live resources hold."""
    vms = VirtualMachine.objects.filter(subscription=subscription, quota_held=True)
    sums = vms.aggregate(vcpus=Sum("vcpus"), memory_mb=Sum("memory_mb"),
                         storage_gb=Sum("disk_gb"))
    live = {
        "vcpus": sums["vcpus"] or 0, "memory_mb": sums["memory_mb"] or 0,
        "storage_gb": sums["storage_gb"] or 0, "vms": vms.count(),
        "networks": Network.objects.filter(subscription=subscription, quota_held=True).count(),
        "snapshots": Snapshot.objects.filter(vm__subscription=subscription,
                                             quota_held=True).count(),
    }
    ledger = dict(QuotaLedger.objects.filter(subscription=subscription).values_list(
        "dimension", "used"))
    drift = {dim: ledger.get(dim, 0) - used for dim, used in live.items()
             if ledger.get(dim, 0) != used}
    return {"quota_drift": sum(abs(v) for v in drift.values()), "quota_drift_by": drift,
            "quota_used": ledger}


def render(report: Report) -> str:
    f = report.figures
    lines = [
        f"chaos: {f['database']} database, {f['broker']} broker, {f['clients']} clients, "
        f"worker concurrency {f['worker_concurrency']}, {f['seconds']:.0f} s",
        "faults injected: " + (", ".join(f"{k} x{v}" for k, v in sorted(f["faults"].items()))
                               or "none")
        + (" (skipped, not applicable: " + ", ".join(sorted(f["faults_skipped"])) + ")"
           if f["faults_skipped"] else ""),
        f"jobs: {f['jobs']} of {f['jobs_asked']} asked for; by end state: "
        + ", ".join(f"{state} {n}" for state, n in f["states"].items()),
        f"jobs not ended after the {f['drain_timeout_s']:.0f} s drain:  {f['not_ended']}",
        f"jobs run twice (a stamp operation applied twice for one step key):  "
        f"{f['run_twice']}",
        f"resources leaked on the stamp:  {f['leaked_on_stamp']}",
        f"resources the portal holds that the stamp lacks:  {f['missing_on_stamp']}",
        f"quota drift (ledger vs live resources):  {f['quota_drift']}"
        + (f" {f['quota_drift_by']}" if f["quota_drift"] else ""),
        f"requests that got no answer in {RETRY_FOR:.0f} s:  {f['client_errors']}",
        f"longest time a job waited while a worker process was idle:  "
        f"{f['longest_idle_wait_s']:.1f} s",
    ]
    for label, key in (("not ended", "not_ended_ids"), ("run twice", "run_twice_keys"),
                       ("leaked", "leaked_ids"), ("missing", "missing_ids")):
        if f[key]:
            lines.append(f"  {label}: {', '.join(f[key])}")
    failures = report.failures
    lines.append("result: " + ("every count is zero" if not failures else
                               "NOT ZERO: " + ", ".join(f"{k} {v}" for k, v in failures.items())))
    return "\n".join(lines)
