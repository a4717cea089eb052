"""The ``ipam`` benchmark: a VM create's address claim against the addresses held.

1. migrate; a memory stamp, its cloud, a plan, a tenant with a subscription and a /16
   network (nothing here calls the stamp);
2. for each size: the network's first ``size`` hosts held (bulk inserts, vacuumed and
   analysed on PostgreSQL), with no hole, or with one near the start (the host at
   ``hole``, given back); then ``claims`` claims of a free address as a create makes it
   (``holdings.claim_free_address``), each in a transaction rolled back, so each sees
   the same rows: p50 and p95, and the address it took (the same every time);
3. deletes everything it created.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Callable
from decimal import Decimal

from django.core.management import call_command
from django.db import connection, transaction

from fabric.models import Cloud, DriverKind, Stamp, Template
from plans.models import Plan, PlanState, Subscription, SubscriptionState
from portal.bench.load import percentile
from provisioning import holdings
from provisioning.models import Network, NetworkAddress, NetworkState, VirtualMachine
from tenants.models import Tenant

__all__ = ["render", "run"]

CIDR = "10.64.0.0/16"
HOLE = 300  # the hole near the start: the 300th free host, given back


def run(*, sizes: tuple[int, ...] = (0, 1500, 20_000, 60_000), claims: int = 50,
        say: Callable[[str], object] = print) -> dict:
    name = f"bench-ipam-{uuid.uuid4().hex[:6]}"
    say(f"Run {name}: migrating")
    call_command("migrate", interactive=False, verbosity=0)
    network = _network(name)
    hosts = [str(h) for h in ipaddress.ip_network(CIDR).hosts()
             if str(h) != network.gateway_address]
    results = []
    try:
        for size in sorted({min(s, len(hosts)) for s in sizes}):
            for hole in ((None, HOLE) if size > HOLE else (None,)):
                _hold(network, hosts[:size], hole=hosts[hole] if hole is not None else None)
                times, taken = _claims(network, claims)
                results.append({"held": size - (hole is not None), "hole": hole is not None,
                                "address": taken, "p50_ms": round(percentile(times, 50), 3),
                                "p95_ms": round(percentile(times, 95), 3)})
                say(f"  {results[-1]['held']} held{' with a hole' if hole else ''}: "
                    f"p50 {results[-1]['p50_ms']:.2f} ms")
    finally:
        _clean(name)
    return {"run": name, "database": connection.vendor, "cidr": CIDR, "claims": claims,
            "results": results}


def _network(name: str) -> Network:
    stamp = Stamp.objects.create(name=name, region="bench", driver=DriverKind.MEMORY,
                                 endpoint=f"mem://{name}")
    cloud = Cloud.objects.create(name=name, stamp=stamp, vcpus=10**6, memory_mb=10**9,
                                 storage_gb=10**8, vms=10**6)
    template = Template.objects.create(name=name, os="Debian 12", cloud=cloud, image="img")
    plan = Plan.objects.create(name=name, state=PlanState.PUBLIC, cloud=cloud,
                               price_monthly=Decimal("10"))
    plan.templates.add(template)
    tenant = Tenant.objects.create(name=f"{name} tenant")
    subscription = Subscription.objects.create(tenant=tenant, plan=plan, name=name,
                                               state=SubscriptionState.ACTIVE)
    gateway = str(next(ipaddress.ip_network(CIDR).hosts()))
    return Network.objects.create(subscription=subscription, name="default", cidr=CIDR,
                                  gateway_address=gateway, state=NetworkState.READY,
                                  is_default=True)


def _hold(network: Network, addresses: list[str], *, hole: str | None) -> None:
    NetworkAddress.objects.filter(network=network).delete()
    for i in range(0, len(addresses), 5000):
        NetworkAddress.objects.bulk_create(NetworkAddress(network=network, address=a)
                                           for a in addresses[i:i + 5000] if a != hole)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {NetworkAddress._meta.db_table}")


def _claims(network: Network, claims: int) -> tuple[list[float], str]:
    times, taken = [], set()
    for _ in range(claims):
        with transaction.atomic():
            started = time.perf_counter()
            taken.add(holdings.claim_free_address(network, VirtualMachine(network=network)))
            times.append((time.perf_counter() - started) * 1000)
            transaction.set_rollback(True)
    if len(taken) != 1:
        raise RuntimeError(f"the claims took different addresses: {sorted(taken)}")
    return times, taken.pop()


def _clean(name: str) -> None:
    stamp = Stamp.objects.filter(name=name).first()
    if stamp is None:
        return
    with transaction.atomic():
        NetworkAddress.objects.filter(network__subscription__name=name).delete()
        Network.objects.filter(subscription__name=name).delete()
        Subscription.objects.filter(name=name).delete()
        Tenant.objects.filter(name=f"{name} tenant").delete()
        Plan.objects.filter(cloud__stamp=stamp).delete()
        Template.objects.filter(cloud__stamp=stamp).delete()
        Cloud.objects.filter(stamp=stamp).delete()
        stamp.delete()


def render(figures: dict) -> str:
    lines = [f"ipam benchmark: {figures['database']} database, a {figures['cidr']} network, "
             f"{figures['claims']} claims each",
             f"{'held':>8} {'hole':>5} {'p50 ms':>8} {'p95 ms':>8}  address"]
    lines += [f"{r['held']:>8} {'yes' if r['hole'] else 'no':>5} {r['p50_ms']:>8.2f} "
              f"{r['p95_ms']:>8.2f}  {r['address']}" for r in figures["results"]]
    return "\n".join(lines)
