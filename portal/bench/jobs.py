"""The ``jobs`` benchmark: how many jobs a worker finishes a second, against what Celery
alone does with the same broker and worker.

For each worker pool asked for (``--pools prefork,threads``), one stack: the embedded
broker (if the settings use it), stampsim (no latency), a worker on the stamp's queue with
that pool, and gunicorn (to build the catalog and a commissioned subscription through
the API, as ``bench provisioning`` does). Then, one phase after the other:

1. **celery**: N messages of a task that does nothing, published as fast as the bench
   can, until the broker holds none, delivered or not yet acknowledged: the floor;
2. **noop jobs**: N jobs of a one-step runbook whose step does nothing, enqueued in
   transactions of ``BATCH`` (each published at its commit, as requests' would be, so the
   worker starts on the first ones while the rest are written, as it does on the celery
   phase's first messages): what the engine adds to a message (the job's rows written and
   published, claim, step rows, the end, the jobs waiting for it);
3. **stamp-call jobs**: N jobs whose one step asks the stamp for its health: a job with
   one fabric round trip, as most VM jobs are.

A phase lasts from the first publish to the last job's ``finished_at``; it prints jobs a
second, the ratio to the celery phase, the median wait in the queue and run time, and
the CPU each part used.
"""

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from tqdm import tqdm

from fabric.models import Stamp
from portal.bench import noop
from portal.bench.cpu import Meter
from portal.bench.load import percentile
from portal.bench.stack import Stack, StackFailed, pool_concurrency
from portal.bench.world import build_world
from portal.celery import app
from provisioning import engine
from provisioning.models import JOB_TERMINAL_STATES, Job, JobState

__all__ = ["render", "run"]

PHASES = ("celery", "noop", "stamp_call")
BATCH = 50  # jobs enqueued in one transaction
TIMEOUT = 900.0


def run(*, jobs: int, pools: list[str], worker_concurrency: int,
        say: Callable[[str], object] = print) -> dict:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    run_dir = Path(settings.VAR_DIR) / "bench" / name
    say(f"Run {name}: migrating; logs in {run_dir}")
    call_command("migrate", interactive=False, verbosity=0)
    results = {}
    for pool in pools:
        concurrency = pool_concurrency(pool, worker_concurrency)
        results[pool] = _one(run_dir / pool, f"{name}-{pool[0]}", jobs, pool, concurrency, say)
    return {
        "scenario": "jobs",
        "database": connection.vendor,
        "broker": ("embedded" if settings.BUFFET_EMBEDDED_BROKER
                   else urlsplit(settings.CELERY_BROKER_URL).scheme),
        "cpus": os.cpu_count(),
        "jobs": jobs,
        "pools": results,
    }


def _one(run_dir: Path, name: str, n: int, pool: str, concurrency: int, say) -> dict:
    with Stack(run_dir, worker_concurrency=concurrency,
               env={"BUFFET_BENCH_ENDPOINTS": "1"}) as stack:
        stack.start_broker()
        stack.start_stampsim(name, "--latency-ms", "0", "--no-fsync")
        queue = Stamp(name=name).queue
        stack.start_worker(["default", queue], pool=pool)
        stack.start_web()
        say(f"{pool} pool, {concurrency} at once: stack up at {stack.url}; building the "
            "catalog and a subscription")
        build_world(stack, name)
        stamp = Stamp.objects.get(name=name)
        meter = stack.meter()
        readings = [meter.read()]
        figures = {"pool": pool, "concurrency": concurrency,
                   "celery": _celery(stack, queue, n)}
        readings.append(meter.read())
        for phase, runbook in (("noop", noop.NOOP), ("stamp_call", noop.STAMP_CALL)):
            figures[phase] = _jobs(stack, stamp, runbook, n)
            readings.append(meter.read())
    floor = figures["celery"]["per_second"]
    for phase in ("noop", "stamp_call"):
        rate = figures[phase]["per_second"]
        figures[phase]["ratio_to_celery"] = round(rate / floor, 3) if floor else None
    figures["cpu_cores"] = {phase: Meter.cores(before, after) for phase, before, after
                            in zip(PHASES, readings[:-1], readings[1:], strict=True)}
    return figures


def _celery(stack: Stack, queue: str, n: int) -> dict:
    """N no-op messages, from the first publish until the broker holds none of them."""
    with app.connection_for_write() as conn:
        redis = conn.default_channel.client  # the Redis protocol, embedded broker too
        started = time.monotonic()
        with conn.Producer() as producer:
            for _ in range(n):
                noop.noop.apply_async(queue=queue, producer=producer)
        published = time.monotonic() - started
        deadline = started + TIMEOUT
        with tqdm(desc="celery", total=n, unit="task", disable=None, leave=False) as bar:
            while time.monotonic() < deadline:
                stack.check()
                left = redis.llen(queue) + redis.hlen("unacked")
                bar.update(max(0, n - left) - bar.n)
                if left == 0:
                    break
                time.sleep(0.01)  # polling interval, bounded by the deadline
            else:
                raise StackFailed(f"the worker did not take {n} no-op tasks within "
                                  f"{TIMEOUT:.0f} s")
        seconds = time.monotonic() - started
    return {"tasks": n, "publish_s": round(published, 3), "seconds": round(seconds, 3),
            "per_second": round(n / seconds, 1)}


def _jobs(stack: Stack, stamp: Stamp, runbook, n: int) -> dict:
    """N jobs of ``runbook`` enqueued ``BATCH`` a transaction, until every one has ended."""
    started = time.time()
    ids = []
    for first in range(0, n, BATCH):
        with transaction.atomic():
            ids += [engine.enqueue(runbook, stamp=stamp).pk
                    for _ in range(min(BATCH, n - first))]
    enqueued = time.time() - started
    deadline = time.monotonic() + TIMEOUT
    with tqdm(desc=runbook.name, total=n, unit="job", disable=None, leave=False) as bar:
        while time.monotonic() < deadline:
            stack.check()
            ended = Job.objects.filter(stamp=stamp, runbook=runbook.name,
                                       state__in=JOB_TERMINAL_STATES).count()
            bar.update(ended - bar.n)
            if ended >= n:
                break
            time.sleep(0.05)  # polling interval, bounded by the deadline
        else:
            raise StackFailed(f"{n} {runbook.name} jobs did not end within {TIMEOUT:.0f} s")
    rows = list(Job.objects.filter(pk__in=ids).values_list(
        "state", "created_at", "started_at", "finished_at"))
    failed = sum(state != JobState.SUCCEEDED for state, *_ in rows)
    if failed:
        raise StackFailed(f"{failed} of {n} {runbook.name} jobs did not succeed")
    # The run ends when the last job has ended and the enqueueing has returned: a fast
    # job published by a commit hook can end before the hooks after it have run.
    seconds = max(max(row[3] for row in rows).timestamp() - started, enqueued)
    return {"jobs": n, "enqueue_s": round(enqueued, 3), "seconds": round(seconds, 3),
            "per_second": round(n / seconds, 1),
            "queued_p50_ms": _median_ms([row[2] - row[1] for row in rows]),
            "running_p50_ms": _median_ms([row[3] - row[2] for row in rows])}


def _median_ms(spans: list) -> float:
    return round(percentile([span.total_seconds() * 1000 for span in spans], 50), 1)


def render(figures: dict) -> str:
    pools = figures["pools"]
    names = list(pools)
    lines = [f"jobs benchmark: {figures['database']} database, {figures['broker']} broker, "
             f"{figures['cpus']} CPUs, {figures['jobs']} of each",
             f"{'':<30}" + "".join(f"{p:>12}" for p in names),
             f"{'processes or threads':<30}"
             + "".join(f"{pools[p]['concurrency']:>12}" for p in names),
             f"{'celery no-op tasks/s':<30}"
             + "".join(f"{pools[p]['celery']['per_second']:>12.1f}" for p in names),
             f"{'  published in s':<30}"
             + "".join(f"{pools[p]['celery']['publish_s']:>12.2f}" for p in names)]
    for phase, label in (("noop", "no-op jobs"), ("stamp_call", "stamp-call jobs")):
        lines += [
            f"{label + '/s':<30}"
            + "".join(f"{pools[p][phase]['per_second']:>12.1f}" for p in names),
            f"{'  enqueued in s':<30}"
            + "".join(f"{pools[p][phase]['enqueue_s']:>12.2f}" for p in names),
            f"{'  ratio to celery':<30}"
            + "".join(f"{pools[p][phase]['ratio_to_celery'] or 0:>12.3f}" for p in names),
            f"{'  median queued / running ms':<30}"
            + "".join(f"{pools[p][phase]['queued_p50_ms']:>6.0f}/"
                      f"{pools[p][phase]['running_p50_ms']:<5.0f}" for p in names)]
    for p in names:
        cpu = pools[p]["cpu_cores"]
        if all(cpu.values()):
            lines.append(f"CPU cores, {p} pool{'':<6}{'celery':>10}{'no-op':>10}"
                         f"{'stamp-call':>12}")
            lines += [f"  {part:<20}" + "".join(f"{cpu[phase][part]:>{w}.2f}" for phase, w
                                                in zip(PHASES, (10, 10, 12), strict=True))
                      for part in cpu["celery"]]
    return "\n".join(lines)
