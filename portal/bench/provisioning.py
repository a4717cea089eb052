"""The ``provisioning`` benchmark: VM creates through the API against a baseline.

One run, one server, one database:

1. migrate, start the embedded broker (if the settings use it), stampsim (no latency), a
   worker on the stamp's queue and gunicorn;
2. build a catalog and a commissioned subscription (``world``);
3. baseline: N clients POST to a minimal authenticated endpoint that inserts one row;
4. VM create: N clients POST ``/api/v1/vms/``; the reaper deletes each VM once its
   create job has ended: once the clients are done (``deletes="after"``: the phase
   measures creates and their jobs) or during the phase as well (``"during"``: creates
   and deletes share the web tier, the run holds few VMs);
5. wait for every create and delete job to end, and report rates, latencies, the
   ratio of the two request rates, the web tier's CPU per create and the jobs finished
   per second end to end.
"""

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from tqdm import tqdm

from fabric.models import Stamp
from portal.bench.cpu import Meter
from portal.bench.load import Outcome, Reaper, Sample, hammer, percentile, summarise
from portal.bench.stack import Stack, StackFailed, pool_concurrency
from portal.bench.world import ROOM, VM_SIZE, build_world, client
from provisioning.models import Job, JobState

__all__ = ["render", "run"]

BASELINE_PATH = "/api/bench/baseline/"
PHASES = ("baseline", "vm_create", "drain")
DELETES = ("after", "during")


def run(*, clients: int, duration: float, requests: int | None, worker_concurrency: int,
        drain_timeout: float, deletes: str = "after", pool: str = "prefork",
        say: Callable[[str], object] = print) -> dict:
    """Run the benchmark; its figures (see ``render``). ``pool``: the worker's, prefork
    with ``worker_concurrency`` processes or threads with four times as many (as the
    portal's own worker of the stamps' queues)."""
    worker_concurrency = pool_concurrency(pool, worker_concurrency)
    name = f"bench-{uuid.uuid4().hex[:6]}"
    run_dir = Path(settings.VAR_DIR) / "bench" / name
    say(f"Run {name}: migrating; logs in {run_dir}")
    call_command("migrate", interactive=False, verbosity=0)
    with Stack(run_dir, worker_concurrency=worker_concurrency) as stack:
        stack.start_broker()
        stack.start_stampsim(name, "--latency-ms", "0", "--no-fsync",
                             "--vcpus", str(ROOM * VM_SIZE["vcpus"]),
                             "--memory-mb", str(ROOM * VM_SIZE["memory_mb"]),
                             "--storage-gb", str(ROOM * VM_SIZE["disk_gb"]),
                             "--max-vms", str(ROOM))
        stack.start_worker(["default", Stamp(name=name).queue], pool=pool)
        stack.start_web()
        say(f"Stack up at {stack.url}; building the catalog and a subscription")
        world = build_world(stack, name)
        connection.close()  # the clients and the reaper use connections of their own
        connect = partial(client, world.url, world.tenant_token)
        load = partial(hammer, clients=clients, duration=duration, requests=requests,
                       connect=connect)
        meter = stack.meter()
        readings = [meter.read()]
        baseline = load("baseline", call=lambda http, _: http.post(BASELINE_PATH, json={}))
        readings.append(meter.read())
        stack.check()
        reaper = Reaper(connect, hold=deletes == "after")

        def create(http: httpx.Client, vm_name: str) -> httpx.Response:
            response = http.post("/api/v1/vms/", json=world.vm(vm_name))
            if response.status_code == 202:
                body = response.json()
                reaper.created.put((body["id"], body["job"]))
            return response

        reaper.thread.start()
        try:
            creates = load("vm-create", call=create)
            readings.append(meter.read())
            reaper.clients_done.set()
            _drain(stack, reaper, 2 * sum(s.status == 202 for s in creates), drain_timeout)
            readings.append(meter.read())
        finally:
            reaper.halt.set()
            reaper.thread.join(timeout=10)
    baseline_figures, create_figures = summarise(baseline, 201), summarise(creates, 202)
    ratio = (create_figures["per_second"] / baseline_figures["per_second"]
             if baseline_figures["per_second"] else None)
    cpu = {phase: Meter.cores(before, after) for phase, before, after
           in zip(PHASES, readings, readings[1:], strict=False)}
    return {
        "scenario": "provisioning",
        "database": connection.vendor,
        "broker": ("embedded" if settings.BUFFET_EMBEDDED_BROKER
                   else urlsplit(settings.CELERY_BROKER_URL).scheme),
        "cpus": os.cpu_count(),
        "clients": clients,
        "duration_s": duration,
        "request_budget": requests,
        "worker_pool": pool,
        "worker_concurrency": worker_concurrency,
        "deletes": deletes,
        "baseline": baseline_figures,
        "vm_create": create_figures,
        "ratio": None if ratio is None else round(ratio, 3),
        "vm_delete": summarise(reaper.outcome.deletes, 202),
        "jobs": _jobs(reaper.outcome, creates),
        "cpu_cores": cpu,
        "web_cpu_ms_per_create": _web_ms_per_create(readings[1], readings[2], creates),
    }


def _web_ms_per_create(before: dict, after: dict, creates: list[Sample]) -> float | None:
    """The web tier's CPU time in the VM phase over the creates it accepted (with
    ``deletes="during"``, the deletes' share is in it)."""
    accepted = sum(s.status == 202 for s in creates)
    if not before or not after or not accepted:
        return None
    return round((after["web"] - before["web"]) * 1000 / accepted, 2)


def _drain(stack: Stack, reaper: Reaper, expected: int, timeout: float) -> None:
    """Wait until the reaper has seen every create and delete job end."""
    deadline = time.monotonic() + timeout
    with tqdm(desc="jobs", total=expected, unit="job", disable=None, leave=False) as bar:
        while reaper.thread.is_alive() and time.monotonic() < deadline:
            stack.check()
            reaper.thread.join(timeout=0.5)
            bar.update(reaper.ended - bar.n)
    if reaper.failure is not None:
        raise StackFailed(f"the reaper failed: {reaper.failure!r}") from reaper.failure


def _jobs(outcome: Outcome, creates: list[Sample]) -> dict:
    """Jobs finished per second, from the first VM create POST to the last job's end,
    and how long jobs waited in the queue and ran (medians)."""
    ids = outcome.create_jobs + outcome.delete_jobs
    rows = []
    for i in range(0, len(ids), 500):
        rows += Job.objects.filter(pk__in=ids[i:i + 500]).values_list(
            "state", "created_at", "started_at", "finished_at")
    ended = [row for row in rows if row[3] is not None]
    states = Counter(state for state, *_ in rows)
    seconds = 0.0
    if ended and creates:
        seconds = max(row[3] for row in ended).timestamp() - min(s.started for s in creates)
    started = [row for row in ended if row[2] is not None]
    return {
        "creates": len(outcome.create_jobs),
        "deletes": len(outcome.delete_jobs),
        "total": len(ids),
        "ended": len(ended),
        "succeeded": states[JobState.SUCCEEDED],
        "states": dict(sorted(states.items())),
        "seconds": round(seconds, 3),
        "per_second": round(len(ended) / seconds, 2) if seconds else 0.0,
        "queued_p50_ms": _median_ms([row[2] - row[1] for row in started]),
        "running_p50_ms": _median_ms([row[3] - row[2] for row in started]),
    }


def _median_ms(spans: list) -> float:
    return round(percentile([span.total_seconds() * 1000 for span in spans], 50), 1)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def render(figures: dict) -> str:
    """The figures as a side-by-side table."""
    base, vm = figures["baseline"], figures["vm_create"]
    rows = [
        ("clients", figures["clients"], figures["clients"]),
        ("requests", base["requests"], vm["requests"]),
        ("accepted/s", f"{base['per_second']:.1f}", f"{vm['per_second']:.1f}"),
        ("p50 ms", f"{base['p50_ms']:.1f}", f"{vm['p50_ms']:.1f}"),
        ("p95 ms", f"{base['p95_ms']:.1f}", f"{vm['p95_ms']:.1f}"),
        ("p99 ms", f"{base['p99_ms']:.1f}", f"{vm['p99_ms']:.1f}"),
        ("errors", base["errors"], vm["errors"]),
    ]
    jobs, deletes = figures["jobs"], figures["vm_delete"]
    ratio = figures["ratio"]
    lines = [f"provisioning benchmark: {figures['database']} database, "
             f"{figures['broker']} broker, {figures['cpus']} CPUs, worker "
             f"{figures['worker_pool']} x{figures['worker_concurrency']}",
             f"{'':<12}{'baseline':>12}{'VM create':>12}"]
    lines += [f"{label:<12}{left:>12}{right:>12}" for label, left, right in rows]
    lines += [
        f"ratio (VM create / baseline accepted/s): "
        f"{'n/a' if ratio is None else f'{ratio:.3f}'}",
        f"web CPU per VM create: {_ms(figures['web_cpu_ms_per_create'])}",
        f"VM deletes ({figures['deletes']} the creates): {deletes['accepted']} accepted, "
        f"{deletes['errors']} errors, p50 {deletes['p50_ms']:.1f} ms",
        f"jobs: {jobs['ended']} of {jobs['total']} ended ({jobs['creates']} creates, "
        f"{jobs['deletes']} deletes; {jobs['succeeded']} succeeded) in "
        f"{jobs['seconds']:.1f} s: {jobs['per_second']:.2f} jobs/s",
        f"a job's median time queued {jobs['queued_p50_ms']:.0f} ms, "
        f"running {jobs['running_p50_ms']:.0f} ms",
    ]
    cpu = figures["cpu_cores"]
    if all(cpu.values()):
        lines.append(f"CPU cores used{'':<4}{'baseline':>10}{'VM create':>11}{'drain':>10}")
        lines += [f"  {part:<16}" + "".join(f"{cpu[phase][part]:>{width}.2f}" for phase, width
                                            in zip(PHASES, (10, 11, 10), strict=True))
                  for part in cpu["baseline"]]
    return "\n".join(lines)
