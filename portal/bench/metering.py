"""The ``metering`` benchmark: one minute of usage for N VMs, collected from a stampsim.

1. migrate; write a stampsim state document holding N VMs (2 vCPUs, 1 GB, 20 GB; one in
   ten with a checkpoint) in one container per subscription, and start stampsim on it
   (no HTTP create per VM);
2. record the same VMs in the portal: a stamp, a cloud, a plan whose vCPU quota half the
   VMs of a subscription fill (so every subscription also has burst rows), the
   subscriptions, their networks and the VMs with their fabric ids (bulk inserts);
   with prices (monthly, usage, burst) and, to rate, what a month brings: each
   subscription's usage by the hour from the first of the previous month to now (as the
   collector keeps it) and the previous month's draft invoices, not issued yet;
3. time ``manage.py collect_usage --rate`` for the last whole minute in a process of its
   own (its peak RSS is the pass's alone): the collection, then the refresh of every
   draft invoice (the running month's and the previous month's, a whole month of
   hours); then the same minute again (every row an update);
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

from billing import prices
from billing.metering import floor_minute
from billing.models import MeterCursor, UsageHour, UsageRecord
from billing.rating import month_of
from billing.rating_models import Invoice
from fabric.models import Cloud, DriverKind, Stamp, Template
from plans import quota
from plans.models import (
    Plan,
    PlanState,
    Subscription,
    SubscriptionPlanPeriod,
    SubscriptionState,
)
from provisioning.models import Network, NetworkState, VirtualMachine, VmState
from stampsim.testing import StampProcess
from tenants.models import Tenant

__all__ = ["render", "run"]

VM = {"vcpus": 2, "memory_mb": 1024, "disk_gb": 20}
PER_SUBSCRIPTION = 1000
SUBSCRIPTIONS_PER_TENANT = 10
BATCH = 5000
USAGE_PRICES = [{"meter": "vcpus", "unit_price": "0.0004"},
                {"meter": "memory_mb", "unit_price": "0.0000004"},
                {"meter": "storage_gb", "unit_price": "0.000002"},
                {"meter": "snapshots", "unit_price": "0.00001"}]


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
        quota_vms=per, quota_networks=1, quota_snapshots=per, price_monthly=Decimal("400"),
        burst_vcpus=per * VM["vcpus"], burst_price_vcpus=Decimal("0.021"))
    since = month_of(month_of(timezone.now()) - timedelta(days=1))  # the previous month
    Plan.objects.filter(pk=plan.pk).update(created_at=since)
    plan.refresh_from_db()
    prices.record_plan_prices(plan, before=None, usage=USAGE_PRICES, at=since)
    tenants = [Tenant.objects.create(name=f"{name}-{t}")
               for t in range(-(-len(owned) // SUBSCRIPTIONS_PER_TENANT))]
    vms = []
    for s, fabric_ids in enumerate(owned):
        with transaction.atomic():
            subscription = Subscription.objects.create(
                tenant=tenants[s // SUBSCRIPTIONS_PER_TENANT], plan=plan, name=f"bench {s}",
                state=SubscriptionState.ACTIVE)
            SubscriptionPlanPeriod.objects.create(subscription=subscription, plan=plan,
                                                  start=since)
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
    _seed_hours(stamp, plan, since, per)
    Invoice.objects.bulk_create(Invoice(tenant=tenant, period_start=since,
                                        period_end=month_of(timezone.now()),
                                        currency=prices.currency()) for tenant in tenants)
    return stamp


def _seed_hours(stamp: Stamp, plan: Plan, since, per: int) -> int:
    """Every subscription's usage by the hour from ``since`` up to the running hour, as
    the collector keeps it for VMs like those on the stamp."""
    per_minute = {"vcpus": per * VM["vcpus"], "memory_mb": per * VM["memory_mb"],
                  "storage_gb": per * VM["disk_gb"], "vms": per, "snapshots": per // 10,
                  "burst.vcpus": per * VM["vcpus"] - plan.quota_vcpus}
    until = timezone.now().replace(minute=0, second=0, microsecond=0)
    subscriptions = list(Subscription.objects.filter(plan=plan).values_list("pk", flat=True))
    if connection.vendor == "postgresql":
        meters = ", ".join(f"('{m}', {q * 60})" for m, q in per_minute.items())
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {UsageHour._meta.db_table}"  # noqa: S608 - our own figures
                " (subscription_id, stamp_id, meter, hour, quantity)"
                " SELECT s.id, %s, m.meter, h, m.quantity"
                f" FROM {Subscription._meta.db_table} s, (VALUES {meters}) m(meter, quantity),"
                " generate_series(%s, %s - interval '1 hour', interval '1 hour') h"
                " WHERE s.plan_id = %s", [stamp.pk, since, until, plan.pk])
            return cursor.rowcount
    rows, hour = [], since
    while hour < until:
        rows += [UsageHour(subscription_id=s, stamp=stamp, meter=m, hour=hour,
                           quantity=q * 60) for s in subscriptions for m, q in per_minute.items()]
        hour += timedelta(hours=1)
    UsageHour.objects.bulk_create(rows, batch_size=BATCH)
    return len(rows)


def _collect(stamp: Stamp, until) -> dict:
    """One pass in a process of its own: its time and peak memory are the pass's."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "collect_usage", "--stamp", stamp.name,
         "--until", until.isoformat(), "--json", "--rate"],
        cwd=Path(settings.BASE_DIR), env=os.environ.copy(), capture_output=True, text=True,
        check=False)
    if done.returncode:
        raise RuntimeError(f"collect_usage failed:\n{done.stderr[-3000:]}")
    collected, rated = (json.loads(line) for line in done.stdout.strip().splitlines()[-2:])
    collected["rating"] = rated["rating"]
    collected["process_seconds"] = round(time.perf_counter() - started, 3)
    return collected


def _clean(name: str) -> None:
    stamp = Stamp.objects.filter(name=name).first()
    if stamp is None:
        return
    UsageRecord.objects.filter(stamp=stamp).delete()
    UsageHour.objects.filter(stamp=stamp).delete()
    MeterCursor.objects.filter(stamp=stamp).delete()
    subscriptions = Subscription.objects.filter(plan__cloud__stamp=stamp)
    Invoice.objects.filter(tenant__subscriptions__in=subscriptions).delete()
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
        invoices = Invoice.objects.filter(tenant__subscriptions__plan__cloud__stamp=stamp)
        totals = sorted(invoices.distinct().values_list("period_start", "total"))
        return {"run": name, "vms": vms, "subscriptions": subscriptions,
                "invoice_totals": {f"{period:%Y-%m}": str(sum(
                    (t for p, t in totals if p == period), Decimal(0)))
                    for period in {p for p, _ in totals}},
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
             f"invoice totals: {figures['invoice_totals']}",
             f"{'pass':<10}{'rows':>10}{'collect s':>11}{'invoices':>10}{'rate s':>9}"
             f"{'both s':>9}{'with start':>12}{'peak MB':>10}"]
    for label in ("first", "again"):
        f, r = figures[label], figures[label]["rating"]
        lines.append(f"{label:<10}{f['rows']:>10}{f['seconds']:>11.2f}{r['invoices']:>10}"
                     f"{r['seconds']:>9.2f}{f['seconds'] + r['seconds']:>9.2f}"
                     f"{f['process_seconds']:>12.2f}{r['max_rss_mb']:>10.1f}")
    return "\n".join(lines)
