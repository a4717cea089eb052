"""The ``metering`` benchmark: one minute of usage for N VMs, collected from a stampsim.

1. migrate; write a stampsim state document holding N VMs (2 vCPUs, 1 GB, 20 GB; one in
   ten with a checkpoint) in one container per subscription, and start stampsim on it
   (no HTTP create per VM);
2. record the same VMs in the portal: a stamp, a cloud, a plan whose vCPU quota half the
   VMs of a subscription fill (so every subscription also has burst rows), the
   subscriptions, their networks and the VMs with their fabric ids (bulk inserts);
3. time ``manage.py collect_usage`` for the last whole minute in a process of its own
   (its peak RSS is the pass's alone), then the same minute again (every row an update);
4. check the rows, delete everything it created (``--keep`` keeps it) and stop stampsim.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from billing.metering import floor_minute
from billing.models import MeterCursor, UsageRecord
from fabric.models import Cloud, DriverKind, Stamp, Template
from plans import quota
from plans.models import Plan, PlanState, Subscription, SubscriptionState
from provisioning.models import Network, NetworkState, VirtualMachine, VmState
from stampsim.testing import StampProcess
from tenants.models import Tenant

__all__ = ["render", "run"]

VM = {"vcpus": 2, "memory_mb": 1024, "disk_gb": 20}
PER_SUBSCRIPTION = 1000
BATCH = 5000


def _state_document(name: str, vms: int, subscriptions: int) -> tuple[dict, list[list[str]]]:
    """A stampsim state with the VMs; the fabric ids of each subscription's VMs."""
    now = timezone.now().isoformat(timespec="milliseconds")
    containers, records, checkpoints, owned = {}, {}, {}, []
    for s in range(subscriptions):
        container = f"ctr-{name}-{s}"
        containers[container] = {"id": container, "name": f"tenant-{s}", "created_at": now}
        owned.append([])
    for i in range(vms):
        s = i % subscriptions
        vm_id = f"vm-{i:012x}"
        records[vm_id] = {
            "id": vm_id, "container_id": f"ctr-{name}-{s}", "name": f"vm-{i}", **VM,
            "image": "img-bench", "network_id": None, "ip_address": None,
            "power_state": "running", "kind": "normal", "data_version": 0, "boot_count": 1,
            "created_at": now}
        if i % 10 == 0:
            checkpoints[f"cp-{i:012x}"] = {"id": f"cp-{i:012x}", "vm_id": vm_id, "name": "b",
                                           "data_version": 0, "created_at": now}
        owned[s].append(vm_id)
    document = {"schema": 1, "containers": containers, "vms": records,
                "checkpoints": checkpoints}
    return document, owned


def _seed_portal(name: str, url: str, owned: list[list[str]]) -> Stamp:
    stamp = Stamp.objects.create(name=name, region="bench", driver=DriverKind.SIMULATED,
                                 endpoint=url)
    cloud = Cloud.objects.create(name=name, stamp=stamp, vcpus=10**7, memory_mb=10**9,
                                 storage_gb=10**8, vms=10**7)
    template = Template.objects.create(name="bench", os="Debian 12", cloud=cloud,
                                       image="img-bench")
    per = max(len(vms) for vms in owned)
    plan = Plan.objects.create(
        name=name, state=PlanState.PRIVATE, cloud=cloud, quota_vcpus=per * VM["vcpus"] // 2,
        quota_memory_mb=per * VM["memory_mb"], quota_storage_gb=per * VM["disk_gb"],
        quota_vms=per, quota_networks=1, quota_snapshots=per)
    tenant = Tenant.objects.create(name=name)
    vms = []
    for s, fabric_ids in enumerate(owned):
        with transaction.atomic():
            subscription = Subscription.objects.create(tenant=tenant, plan=plan,
                                                       name=f"bench {s}",
                                                       state=SubscriptionState.ACTIVE)
            quota.set_limits(subscription, plan.quotas())
            network = Network.objects.create(subscription=subscription, name="default",
                                             cidr="10.0.0.0/16", state=NetworkState.READY,
                                             fabric_id=f"net-{name}-{s}", is_default=True)
        vms += [VirtualMachine(subscription=subscription, name=f"vm-{fabric_id}",
                               template=template, network=network, state=VmState.RUNNING,
                               fabric_id=fabric_id, quota_held=False, **VM)
                for fabric_id in fabric_ids]
    for i in range(0, len(vms), BATCH):
        VirtualMachine.objects.bulk_create(vms[i:i + BATCH])
    return stamp


def _collect(stamp: Stamp, until) -> dict:
    """One pass in a process of its own: its time and peak memory are the pass's."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "collect_usage", "--stamp", stamp.name,
         "--until", until.isoformat(), "--json"],
        cwd=Path(settings.BASE_DIR), env=os.environ.copy(), capture_output=True, text=True,
        check=False)
    if done.returncode:
        raise RuntimeError(f"collect_usage failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_seconds"] = round(time.perf_counter() - started, 3)
    return figures


def _clean(name: str) -> None:
    stamp = Stamp.objects.filter(name=name).first()
    if stamp is None:
        return
    UsageRecord.objects.filter(stamp=stamp).delete()
    MeterCursor.objects.filter(stamp=stamp).delete()
    subscriptions = Subscription.objects.filter(plan__cloud__stamp=stamp)
    VirtualMachine.objects.filter(subscription__in=subscriptions).delete()
    Network.objects.filter(subscription__in=subscriptions).delete()
    tenants = list(subscriptions.values_list("tenant_id", flat=True).distinct())
    subscriptions.delete()
    Tenant.objects.filter(pk__in=tenants).delete()
    Plan.objects.filter(cloud__stamp=stamp).delete()
    Template.objects.filter(cloud__stamp=stamp).delete()
    Cloud.objects.filter(stamp=stamp).delete()
    stamp.delete()


def run(*, vms: int, keep: bool = False, say: Callable[[str], object] = print) -> dict:
    name = f"bench-metering-{uuid.uuid4().hex[:6]}"
    run_dir = Path(settings.VAR_DIR) / "bench" / name
    say(f"Run {name}: migrating; stampsim data in {run_dir}")
    call_command("migrate", interactive=False, verbosity=0)
    subscriptions = max(1, -(-vms // PER_SUBSCRIPTION))
    started = time.perf_counter()
    document, owned = _state_document(name, vms, subscriptions)
    (run_dir / "stampsim").mkdir(parents=True, exist_ok=True)
    (run_dir / "stampsim" / "state.json").write_text(json.dumps(document))
    del document
    sim = StampProcess(name, run_dir / "stampsim", args=[
        "--latency-ms", "0", "--no-fsync", "--max-vms", str(vms + 10),
        "--vcpus", str(VM["vcpus"] * vms + 10), "--memory-mb", str(VM["memory_mb"] * vms + 10),
        "--storage-gb", str(VM["disk_gb"] * vms + 10)])
    sim.start(timeout=120)
    try:
        stamp = _seed_portal(name, sim.url, owned)
        seeded = time.perf_counter() - started
        say(f"Seeded {vms} VMs in {subscriptions} subscriptions in {seeded:.1f} s; collecting")
        until = floor_minute(timezone.now())
        MeterCursor.objects.update_or_create(
            stamp=stamp, defaults={"collected_until": until - timedelta(minutes=1)})
        first = _collect(stamp, until)
        MeterCursor.objects.filter(stamp=stamp).update(collected_until=until - timedelta(
            minutes=1))
        again = _collect(stamp, until)
        minute = until - timedelta(minutes=1)
        rows = UsageRecord.objects.filter(stamp=stamp, minute=minute).count()
        vcpus = sum(UsageRecord.objects.filter(stamp=stamp, minute=minute, meter="vcpus")
                    .values_list("quantity", flat=True), Decimal(0))
        expected = vms * 4 + vms // 10 + (vms % 10 > 0) + subscriptions
        return {"run": name, "vms": vms, "subscriptions": subscriptions,
                "database": connection.vendor, "seed_seconds": round(seeded, 1),
                "first": first, "again": again, "rows": rows, "expected_rows": expected,
                "vcpu_minutes": int(vcpus)}
    finally:
        sim.stop()
        if not keep:
            _clean(name)


def render(figures: dict) -> str:
    lines = [f"metering: {figures['vms']} VMs in {figures['subscriptions']} subscriptions on "
             f"{figures['database']}; rows for the minute: {figures['rows']} "
             f"(expected {figures['expected_rows']}), vCPU-minutes {figures['vcpu_minutes']}",
             f"{'pass':<10}{'rows':>10}{'seconds':>10}{'with start':>12}{'peak MB':>10}"]
    for label in ("first", "again"):
        f = figures[label]
        lines.append(f"{label:<10}{f['rows']:>10}{f['seconds']:>10.2f}"
                     f"{f['process_seconds']:>12.2f}{f['max_rss_mb']:>10.1f}")
    return "\n".join(lines)
