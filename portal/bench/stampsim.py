"""The ``stampsim`` benchmark: does a stamp slow down as it fills?

For each of two phases, pruning on (``--operation-retention-hours``, default 24) and
pruning off (``0``: every operation and key kept), the command:

1. starts a stampsim process (``--latency-ms 0``; ``--no-fsync`` unless ``fsync``) on a
   fresh data directory, builds ten containers with a /20 network each, and freezes the
   stamp's clock;
2. sends ``operations`` calls through the portal's own driver (``SimulatedDriver``,
   one client, one call at a time) at ``rate`` calls a second, on schedule (a call late
   on its schedule goes at once; 0 is as fast as it can): a fixed mix, drawn from the
   same seed in both phases, so both send the very same calls: ``MIX`` below. The
   stamp's clock moves one minute forward per call (ten minutes every ten calls), so
   10,000 calls span about a week of the stamp's time and a 24 h window keeps the last
   1,440 or so;
3. for each slice of ``slice_size`` calls: latency percentiles (nearest-rank, measured by
   the client around the driver call, which ends with the operation: with no latency the
   first answer holds the finished operation) and stampsim's own CPU per call;
4. at the end: the sizes of ``state.json`` and ``journal.jsonl``, stampsim's resident
   memory, and, from the files loaded again after stopping it, the rows of each table
   and the bytes of the operations and keys tables.
"""

import json
import os
import platform
import random
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from tqdm import tqdm

from fabric.drivers import DriverError
from fabric.drivers.simulated import SimulatedDriver
from portal.bench.cpu import Meter
from portal.bench.load import percentile
from stampsim.state import Store
from stampsim.testing import StampProcess

__all__ = ["MIX", "render", "run"]

# What the calls are, by weight: VMs are made faster than they go, so the stamp fills
# (about 1,500 VMs after 10,000 calls), as a stamp does in its first weeks.
MIX = {
    "vm.create": 25,
    "vm.power": 40,  # stop a running VM, start a stopped one
    "checkpoint.create": 15,
    "checkpoint.delete": 10,
    "vm.delete": 10,
}
CONTAINERS = 10
VM = {"vcpus": 1, "memory_mb": 512, "disk_gb": 10, "image": "img-bench"}
CLOCK_STEP = 10  # calls between two moves of the stamp's clock (a minute per call)
T0 = datetime(2030, 1, 7, tzinfo=UTC)  # where the stamp's clock starts


def run(*, operations: int, rate: float, retention_hours: float, slice_size: int,
        fsync: bool = False, say: Callable[[str], object] = print) -> dict:
    """Run both phases; their figures (see ``render``)."""
    name = f"bench-stampsim-{uuid.uuid4().hex[:6]}"
    run_dir = Path(settings.VAR_DIR) / "bench" / name
    say(f"Run {name}: {operations} calls per phase at "
        f"{f'{rate:g}/s' if rate else 'full speed'}; data and logs in {run_dir}")
    phases = []
    with tqdm(desc="calls", total=2 * operations, unit="call", disable=None,
              leave=False) as bar:
        for label, hours in (("pruned", retention_hours), ("kept", 0.0)):
            phases.append(_phase(run_dir / label, label, hours, operations=operations,
                                 rate=rate, slice_size=slice_size, fsync=fsync,
                                 progress=bar.update))
    return {
        "scenario": "stampsim",
        "commit": _commit(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "operations": operations,
        "rate": rate,
        "slice": slice_size,
        "fsync": fsync,
        "retention_hours": retention_hours,
        "mix": MIX,
        "phases": phases,
    }


def _phase(data_dir: Path, label: str, retention_hours: float, *, operations: int,
           rate: float, slice_size: int, fsync: bool, progress: Callable[[int], object]) -> dict:
    args = ["--latency-ms", "0", "--operation-retention-hours", f"{retention_hours:g}",
            "--vcpus", str(10 * operations), "--memory-mb", str(512 * 10 * operations),
            "--storage-gb", str(10 * 10 * operations), "--max-vms", str(10 * operations)]
    if not fsync:
        args.append("--no-fsync")
    stamp = StampProcess(label, data_dir, args=args)
    stamp.start(timeout=60)
    try:
        driver = SimulatedDriver(label, stamp.url, timeout=60.0)
        try:
            figures = _drive(stamp, driver, label, operations=operations, rate=rate,
                             slice_size=slice_size, progress=progress)
        finally:
            driver.close()
        figures["rss_mb"] = _rss_mb(stamp)
    finally:
        stamp.stop()
    return {"label": label, "retention_hours": retention_hours, "url": stamp.url, **figures,
            **_files(data_dir)}


class _Fleet:
    """What the client knows of the stamp: its VMs, their power and checkpoints."""

    def __init__(self, driver: SimulatedDriver, networks: list[tuple[str, str]]):
        self.driver, self.networks = driver, networks
        # id -> {"running": bool, "checkpoints": [ids]}, in the order they were made (not by
        # id: ids are random, and both phases must pick the same VMs)
        self.vms: dict[str, dict] = {}

    def call(self, kind: str, key: str, dice: random.Random) -> str:
        """Make one call of ``kind`` (or of the nearest kind that can be made); the kind
        made."""
        vms = list(self.vms)
        if kind != "vm.create" and not vms:
            kind = "vm.create"
        if kind == "checkpoint.delete":
            with_checkpoints = [vm for vm in vms if self.vms[vm]["checkpoints"]]
            kind = "checkpoint.delete" if with_checkpoints else "checkpoint.create"
            vms = with_checkpoints or vms
        if kind == "vm.create":
            container_id, network_id = dice.choice(self.networks)
            vm = self.driver.create_vm(key=key, container_id=container_id, name=key,
                                       network_id=network_id, **VM)
            self.vms[vm.id] = {"running": True, "checkpoints": []}
            return kind
        vm_id = dice.choice(vms)
        vm = self.vms[vm_id]
        if kind == "vm.power":
            if vm["running"]:
                self.driver.stop_vm(key=key, vm_id=vm_id)
            else:
                self.driver.start_vm(key=key, vm_id=vm_id)
            vm["running"] = not vm["running"]
        elif kind == "checkpoint.create":
            vm["checkpoints"].append(
                self.driver.create_checkpoint(key=key, vm_id=vm_id, name=key).id)
        elif kind == "checkpoint.delete":
            checkpoint_id = vm["checkpoints"].pop(dice.randrange(len(vm["checkpoints"])))
            self.driver.delete_checkpoint(key=key, vm_id=vm_id, checkpoint_id=checkpoint_id)
        elif kind == "vm.delete":
            self.driver.delete_vm(key=key, vm_id=vm_id)
            del self.vms[vm_id]
        return kind


def _drive(stamp: StampProcess, driver: SimulatedDriver, label: str, *, operations: int,
           rate: float, slice_size: int, progress: Callable[[int], object]) -> dict:
    _set_clock(stamp, T0)
    networks = []
    for c in range(CONTAINERS):
        container = driver.create_container(key=f"setup-c{c}", name=f"tenant-{c}")
        network = driver.create_network(key=f"setup-n{c}", container_id=container.id,
                                        name="default", cidr=f"10.{c}.0.0/20")
        networks.append((container.id, network.id))
    fleet = _Fleet(driver, networks)
    dice = random.Random(20301)  # the same calls in both phases
    kinds, weights = list(MIX), list(MIX.values())
    meter = Meter(groups={}, pids={"stampsim": stamp.process.pid})
    made, errors = Counter(), Counter()
    slices, latencies, late = [], [], 0.0
    reading = meter.read()
    start = time.monotonic()
    for i in range(operations):
        if i and i % CLOCK_STEP == 0:
            _set_clock(stamp, T0 + timedelta(minutes=i))
        due = start + i / rate if rate else time.monotonic()
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # the steady rate: each call at its time, not sooner
        else:
            late = max(late, -wait)
        kind = dice.choices(kinds, weights)[0]
        began = time.perf_counter()
        try:
            made[fleet.call(kind, f"{label}-{i}", dice)] += 1
        except DriverError as exc:
            errors[f"{kind}: {exc.code or type(exc).__name__}"] += 1
        latencies.append((time.perf_counter() - began) * 1000)
        progress(1)
        if len(latencies) == slice_size or i == operations - 1:
            now = meter.read()
            slices.append(_slice(i + 1 - len(latencies), latencies, reading, now,
                                 len(fleet.vms)))
            latencies, reading = [], now
    seconds = time.monotonic() - start
    return {
        "seconds": round(seconds, 1),
        "per_second": round(operations / seconds, 1),
        "late_max_s": round(late, 3),
        "made": dict(sorted(made.items())),
        "errors": dict(sorted(errors.items())),
        "error_count": sum(errors.values()),
        "vms": len(fleet.vms),
        "slices": slices,
    }


def _slice(first: int, latencies: list[float], before: dict, after: dict, vms: int) -> dict:
    cpu = ({"stampsim_cpu_ms": round((after["stampsim"] - before["stampsim"]) * 1000
                                     / len(latencies), 2),
            "machine_cores": round((after["machine"] - before["machine"])
                                   / (after["wall"] - before["wall"]), 2)}
           if before and after else {})
    return {"first": first + 1, "last": first + len(latencies), "vms": vms,
            "p50_ms": round(percentile(latencies, 50), 2),
            "p95_ms": round(percentile(latencies, 95), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
            "max_ms": round(max(latencies), 2), **cpu}


def _set_clock(stamp: StampProcess, moment: datetime) -> None:
    status, body = stamp.request("POST", "/v1/admin/clock", {"now": moment.isoformat()})
    if status != 200:
        raise RuntimeError(f"stampsim refused its clock: HTTP {status} {body}")


def _rss_mb(stamp: StampProcess) -> float | None:
    try:
        status = Path(f"/proc/{stamp.process.pid}/status").read_text()
    except (OSError, AttributeError):
        return None
    kb = next((int(line.split()[1]) for line in status.splitlines()
               if line.startswith("VmRSS:")), None)
    return None if kb is None else round(kb / 1024, 1)


def _files(data_dir: Path) -> dict:
    """The files' sizes and, loaded as stampsim loads them, the rows of each table."""
    state_file, journal = data_dir / Store.FILENAME, data_dir / Store.JOURNAL
    data = Store(data_dir).load() or {}
    tables = {table: len(rows) for table, rows in data.items() if isinstance(rows, dict)}
    return {
        "state_bytes": state_file.stat().st_size if state_file.exists() else 0,
        "journal_bytes": journal.stat().st_size if journal.exists() else 0,
        "rows": tables,
        "operations_bytes": len(json.dumps(data.get("operations", {}))),
        "keys_bytes": len(json.dumps(data.get("keys", {}))),
    }


def _commit() -> str | None:
    try:
        found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                               text=True, timeout=10, cwd=settings.BASE_DIR, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10,
                               cwd=settings.BASE_DIR, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def render(figures: dict) -> str:
    """Both phases side by side, slice by slice, then the files at the end."""
    pruned, kept = figures["phases"]
    rate = f"{figures['rate']:g}/s" if figures["rate"] else "full speed"
    lines = [
        f"stampsim benchmark: {figures['operations']} calls per phase at {rate}, one client; "
        f"fsync {'on' if figures['fsync'] else 'off'}; commit {figures['commit']}, "
        f"{figures['cpus']} CPUs, Python {figures['python']}",
        f"latency per slice of {figures['slice']} calls (ms) and stampsim CPU per call (ms): "
        f"pruned = {pruned['retention_hours']:g} h window, kept = every operation kept",
        "(load: the cores the whole machine used meanwhile, this benchmark included)",
        f"{'calls':<13}{'VMs':>6}{'pruned p50':>12}{'p95':>7}{'max':>7}{'cpu':>6}{'load':>6}"
        f"{'kept p50':>10}{'p95':>7}{'max':>7}{'cpu':>6}{'load':>6}",
    ]
    for a, b in zip(pruned["slices"], kept["slices"], strict=True):
        line = f"{a['first']:>5}-{a['last']:<7}{a['vms']:>6}"
        for s, width in ((a, 12), (b, 10)):
            line += (f"{s['p50_ms']:>{width}.1f}{s['p95_ms']:>7.1f}{s['max_ms']:>7.0f}"
                     f"{s.get('stampsim_cpu_ms', 0):>6.2f}{s.get('machine_cores', 0):>6.2f}")
        lines.append(line)
    rows = [
        ("seconds (calls/s)", *(f"{p['seconds']:.1f} ({p['per_second']:.1f})"
                                for p in (pruned, kept))),
        ("latest call vs schedule", *(f"{p['late_max_s'] * 1000:.0f} ms" for p in (pruned, kept))),
        ("errors", *(str(p["error_count"]) for p in (pruned, kept))),
        ("state.json", *(_size(p["state_bytes"]) for p in (pruned, kept))),
        ("journal.jsonl", *(_size(p["journal_bytes"]) for p in (pruned, kept))),
        ("operations (rows)", *(str(p["rows"].get("operations", 0)) for p in (pruned, kept))),
        ("operations (bytes)", *(_size(p["operations_bytes"]) for p in (pruned, kept))),
        ("keys (rows)", *(str(p["rows"].get("keys", 0)) for p in (pruned, kept))),
        ("VMs, checkpoints", *(f"{p['rows'].get('vms', 0)}, {p['rows'].get('checkpoints', 0)}"
                               for p in (pruned, kept))),
        ("history (VMs)", *(str(p["rows"].get("history", 0)) for p in (pruned, kept))),
        ("stampsim RSS", *(f"{p['rss_mb']} MB" for p in (pruned, kept))),
    ]
    lines.append(f"{'at the end':<26}{'pruned':>20}{'kept':>20}")
    lines += [f"{label:<26}{left:>20}{right:>20}" for label, left, right in rows]
    made = ", ".join(f"{kind} {count}" for kind, count in pruned["made"].items())
    lines.append(f"calls made (each phase): {made}")
    for phase in (pruned, kept):
        if phase["errors"]:
            lines.append(f"errors ({phase['label']}): {phase['errors']}")
    return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KB"
