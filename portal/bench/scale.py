"""The ``scale`` benchmark: every list, detail and page at provider scale.

1. migrate; seed with bulk inserts: T tenants with an owner each, S subscriptions
   (quota ledger, a default network), V VMs (one tenant holds ``BIG_TENANT_VMS`` of them
   in one subscription, the others are spread evenly), J jobs with ``steps / jobs``
   steps each; one stamp, cloud, template and public plan (a memory stamp: nothing here
   calls it);
2. in this process, with Django's test client: a warm-up request, then ``requests``
   sequential ones to each endpoint of the tenant API (as the big tenant's owner), the
   admin API and both portals (as a provider admin): p50, p95, bytes and SQL queries of
   one request; the query count of each is also taken before the bulk seed (on the first
   rows alone), so a count that grows with rows shows;
3. deletes everything it created (``--keep`` keeps it).
"""

from __future__ import annotations

import math
import statistics
import time
import uuid
from collections.abc import Callable
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from fabric.models import Cloud, DriverKind, Stamp, Template
from plans.models import (
    Plan,
    PlanState,
    QuotaDimension,
    QuotaLedger,
    Subscription,
    SubscriptionState,
)
from portal import heap
from provisioning.models import (
    Job,
    JobState,
    JobStep,
    Network,
    NetworkState,
    StepState,
    VirtualMachine,
    VmState,
)
from tenants.models import Membership, Role, Tenant, User

__all__ = ["render", "run"]

BATCH = 5000
BIG_TENANT_VMS = 5000
GOAL_P95_MS = 50.0
QUOTA = {"vcpus": 100_000, "memory_mb": 10**8, "storage_gb": 10**7, "vms": 10_000,
         "networks": 10, "snapshots": 1000}


def _endpoints(w: dict) -> list[tuple[str, str, str]]:
    """(who, group, url) of every endpoint measured."""
    sub, vm, job, tenant = w["subscription"], w["vm"], w["job"], w["tenant"]
    plan = w["plan"]
    tenant_api = ["/api/v1/subscriptions/", f"/api/v1/subscriptions/{sub}/",
                  f"/api/v1/subscriptions/{sub}/quota/", "/api/v1/vms/", f"/api/v1/vms/{vm}/",
                  "/api/v1/networks/", "/api/v1/jobs/", f"/api/v1/jobs/{job}/",
                  "/api/v1/plans/", "/api/v1/invoices/", "/api/v1/activity/"]
    admin_api = ["/api/v1/admin/tenants/", "/api/v1/admin/subscriptions/",
                 "/api/v1/admin/jobs/", f"/api/v1/admin/jobs/{job}/", "/api/v1/admin/plans/",
                 f"/api/v1/admin/plans/{plan}/", "/api/v1/admin/stamps/",
                 "/api/v1/admin/clouds/"]
    tenant_pages = ["/", "/subscriptions/", f"/subscriptions/{sub}/", "/vms/",
                    f"/vms/{vm}/", "/networks/", "/jobs/", f"/jobs/{job}/", "/plans/"]
    provider_pages = ["/admin/", "/admin/tenants/", f"/admin/tenants/{tenant}/",
                      "/admin/subscriptions/", "/admin/jobs/", f"/admin/jobs/{job}/",
                      "/admin/plans/", f"/admin/plans/{plan}/", "/admin/stamps/",
                      "/admin/clouds/"]
    return ([("tenant", "tenant API", u) for u in tenant_api]
            + [("staff", "admin API", u) for u in admin_api]
            + [("tenant", "tenant portal", u) for u in tenant_pages]
            + [("staff", "provider portal", u) for u in provider_pages])


# -- seeding -------------------------------------------------------------------------------
def _bulk(model, rows: list) -> None:
    for i in range(0, len(rows), BATCH):
        model.objects.bulk_create(rows[i:i + BATCH])


def _seed_catalog(name: str) -> dict:
    stamp = Stamp.objects.create(name=name, region="bench", driver=DriverKind.MEMORY,
                                 endpoint=f"mem://{name}")
    cloud = Cloud.objects.create(name=name, stamp=stamp, vcpus=10**7, memory_mb=10**9,
                                 storage_gb=10**8, vms=10**7)
    template = Template.objects.create(name=name, os="Debian 12", cloud=cloud,
                                       image="img-bench")
    plan = Plan.objects.create(name=name, state=PlanState.PUBLIC, cloud=cloud,
                               price_monthly=Decimal("10"),
                               **{f"quota_{d}": n for d, n in QUOTA.items()})
    plan.templates.add(template)
    return {"stamp": stamp, "cloud": cloud, "template": template, "plan": plan}


def _seed(name: str, catalog: dict, *, tenants: int, subscriptions: int, vms: int,
          jobs: int, steps: int, say, home: dict | None = None, tag: str = "",
          home_vms: int = BIG_TENANT_VMS) -> dict:
    """Bulk-insert the rows. The first tenant, subscription and network are ``home``'s
    when given (the measured tenant: it gets the big subscription's VMs and one job in
    fifty)."""
    password = make_password(uuid.uuid4().hex)
    first = 1 if home else 0
    tenant_rows = [Tenant(name=f"{name} tenant {tag}{t:05d}") for t in range(first, tenants)]
    users = [User(email=f"owner{tag}{t}@{name}.example", password=password)
             for t in range(first, tenants)]
    _bulk(Tenant, tenant_rows)
    _bulk(User, users)
    _bulk(Membership, [Membership(user=u, tenant=t, role=Role.OWNER)
                       for u, t in zip(users, tenant_rows, strict=True)])
    say(f"  {tenants} tenants with their owners")
    if home:
        tenant_rows.insert(0, home["tenant"])
    subs = [Subscription(tenant=tenant_rows[s % tenants], plan=catalog["plan"],
                         name=f"sub {tag}{s}", state=SubscriptionState.ACTIVE)
            for s in range(first, subscriptions)]
    _bulk(Subscription, subs)
    _bulk(QuotaLedger, [QuotaLedger(subscription=s, dimension=d, limit=QUOTA[d], used=0)
                        for s in subs for d in QuotaDimension.values])
    networks = [Network(subscription=s, name="default", cidr="10.0.0.0/16",
                        state=NetworkState.READY, fabric_id=f"net-{name}-{tag}{i}",
                        is_default=True) for i, s in enumerate(subs)]
    _bulk(Network, networks)
    if home:
        subs.insert(0, home["subscription"])
        networks.insert(0, home["network"])
    say(f"  {subscriptions} subscriptions with their quota and network")
    big = min(home_vms, vms)
    owners = [0] * big + [1 + i % max(1, subscriptions - 1) for i in range(vms - big)]
    template = catalog["template"]
    rows = []
    for i, s in enumerate(owners):
        s = min(s, subscriptions - 1)
        rows.append(VirtualMachine(subscription=subs[s], network=networks[s], template=template,
                                   name=f"vm-{tag}{i}", state=VmState.RUNNING, vcpus=1,
                                   memory_mb=512, disk_gb=10, fabric_id=f"vm-{name}-{tag}{i}",
                                   quota_held=False))
        if len(rows) == BATCH:
            VirtualMachine.objects.bulk_create(rows)
            rows = []
    VirtualMachine.objects.bulk_create(rows)
    say(f"  {vms} VMs")
    per_job, extra = max(1, steps // max(1, jobs)), (steps % jobs if steps > jobs else 0)
    done = made = 0
    while done < jobs:
        count = min(BATCH // per_job or 1, jobs - done)
        batch = [Job(runbook="vm.create", stamp=catalog["stamp"],
                     tenant=tenant_rows[0] if (done + j) % 50 == 0 else
                     tenant_rows[(done + j) % tenants],
                     subscription=subs[0] if (done + j) % 50 == 0 else
                     subs[(done + j) % subscriptions],
                     state=JobState.SUCCEEDED, resource_type="vm",
                     resource_id=str(uuid.uuid4()))
                 for j in range(count)]
        Job.objects.bulk_create(batch)
        rows = [JobStep(job=job, index=k, name=f"step {k}", state=StepState.SUCCEEDED)
                for j, job in enumerate(batch, done)
                for k in range(per_job + (j < extra))]
        JobStep.objects.bulk_create(rows)
        done, made = done + count, made + len(rows)
    say(f"  {jobs} jobs with {made} steps")
    return {"steps": made, "home_vms": big}


def _world(catalog: dict) -> dict:
    subscription = Subscription.objects.filter(plan=catalog["plan"]).order_by("name").first()
    tenant = subscription.tenant
    return {"tenant": tenant.pk, "subscription": subscription.pk, "plan": catalog["plan"].pk,
            "vm": VirtualMachine.objects.filter(subscription=subscription).first().pk,
            "job": Job.objects.filter(tenant=tenant).first().pk,
            "owner": Membership.objects.get(tenant=tenant, role=Role.OWNER).user,
            "home": {"tenant": tenant, "subscription": subscription,
                     "network": subscription.networks.get()}}


# -- measuring ----------------------------------------------------------------------------
def _clients(owner: User, staff: User) -> dict[str, Client]:
    """Logged in as after the login page: the staff account with its authenticator app."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=staff, name="bench", confirmed=True)
    clients = {}
    for who, user in (("tenant", owner), ("staff", staff)):
        client = Client()
        client.force_login(user)
        if user == staff:
            session = client.session
            session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.save()
        clients[who] = client
    return clients


def _queries(clients, endpoints) -> dict[str, int]:
    """The queries of one request to each endpoint, after a first one (which may fill a
    cache)."""
    counts = {}
    for who, _, url in endpoints:
        clients[who].get(url)
        with CaptureQueriesContext(connection) as captured:
            response = clients[who].get(url)
        counts[url] = len(captured) if response.status_code == 200 else -response.status_code
    return counts


def _time(clients, endpoints, requests: int) -> list[dict]:
    results = []
    for who, group, url in endpoints:
        client = clients[who]
        response = client.get(url)  # warm
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        results.append({"group": group, "url": url, "status": response.status_code,
                        "bytes": len(response.content),
                        "p50_ms": round(statistics.median(times), 1),
                        "p95_ms": round(times[math.ceil(len(times) * 0.95) - 1], 1)})
    return results


def _plans(world: dict) -> dict[str, str]:
    """``EXPLAIN`` of the statements the lists and the overview run, on this database."""
    if connection.vendor != "postgresql":
        return {}
    return {
        "admin jobs, newest first": Job.objects.order_by("-created_at")[:25].explain(),
        "the big subscription's VMs, newest first": VirtualMachine.objects.filter(
            subscription_id=world["subscription"]).order_by("-created_at")[:25].explain(),
        "a tenant's jobs, newest first": Job.objects.filter(
            tenant_id=world["tenant"]).order_by("-created_at")[:25].explain(),
        "running jobs (the overview)": Job.objects.filter(
            state=JobState.RUNNING).values("pk").explain(),
    }


# -- the run -------------------------------------------------------------------------------
def _clean(name: str) -> None:
    stamp = Stamp.objects.filter(name=name).first()
    if stamp is None:
        return
    with transaction.atomic():
        jobs = Job.objects.filter(stamp=stamp)
        JobStep.objects.filter(job__stamp=stamp)._raw_delete(JobStep.objects.db)
        jobs._raw_delete(Job.objects.db)
        subscriptions = Subscription.objects.filter(plan__cloud__stamp=stamp)
        VirtualMachine.objects.filter(subscription__in=subscriptions)._raw_delete(
            VirtualMachine.objects.db)
        Network.objects.filter(subscription__in=subscriptions)._raw_delete(Network.objects.db)
        QuotaLedger.objects.filter(subscription__in=subscriptions)._raw_delete(
            QuotaLedger.objects.db)
        tenants = Tenant.objects.filter(name__startswith=f"{name} tenant ")
        users = User.objects.filter(email__endswith=f"@{name}.example")
        Membership.objects.filter(tenant__in=tenants)._raw_delete(Membership.objects.db)
        subscriptions.delete()
        tenants.delete()
        users.delete()
        Plan.objects.filter(cloud__stamp=stamp).delete()
        Template.objects.filter(cloud__stamp=stamp).delete()
        Cloud.objects.filter(stamp=stamp).delete()
        stamp.delete()


def run(*, tenants: int = 10_000, subscriptions: int = 20_000, vms: int = 100_000,
        jobs: int = 100_000, steps: int = 1_000_000, requests: int = 30, keep: bool = False,
        stages: tuple[float, ...] = (1.0,), say: Callable[[str], object] = print) -> dict:
    """Seed the scale in ``stages`` (fractions of it, growing to 1) and time every endpoint
    after each stage, and at the first rows."""
    name = f"bench-scale-{uuid.uuid4().hex[:6]}"
    say(f"Run {name}: migrating")
    call_command("migrate", interactive=False, verbosity=0)
    subscriptions, tenants = max(2, subscriptions), max(1, tenants)
    stages = tuple(sorted({min(1.0, f) for f in stages if f > 0} | {1.0}))
    staff = User.objects.create_superuser(f"staff@{name}.example", uuid.uuid4().hex)
    try:
        with override_settings(ALLOWED_HOSTS=["testserver"]):
            catalog = _seed_catalog(name)
            # the first rows: a tenant, two subscriptions, two VMs, two jobs
            _seed(name, catalog, tenants=1, subscriptions=2, vms=2, jobs=2, steps=10,
                  say=lambda _: None, tag="few")
            world = _world(catalog)
            endpoints = _endpoints(world)
            clients = _clients(world["owner"], staff)
            few = _queries(clients, endpoints)
            heap.freeze()  # as the web server does once loaded (portal.wsgi)
            curve = [{"vms": 2, "p95_ms": _p95s(_time(clients, endpoints, requests))}]
            seeded = {"tenants": 0, "subscriptions": 0, "vms": 0, "jobs": 0, "steps": 0}
            home_vms, seed_seconds = BIG_TENANT_VMS, 0.0
            for number, fraction in enumerate(stages, 1):
                goal = {"tenants": round(tenants * fraction),
                        "subscriptions": max(2, round(subscriptions * fraction)),
                        "vms": round(vms * fraction), "jobs": round(jobs * fraction),
                        "steps": round(steps * fraction)}
                more = {k: max(0, goal[k] - seeded[k]) for k in goal}
                started = time.perf_counter()
                say(f"Seeding {more['tenants']} tenants, {more['subscriptions']} "
                    f"subscriptions, {more['vms']} VMs, {more['jobs']} jobs, "
                    f"{more['steps']} steps (stage {number} of {len(stages)})")
                made = _seed(name, catalog, tenants=max(1, more["tenants"]),
                             subscriptions=max(2, more["subscriptions"]), vms=more["vms"],
                             jobs=more["jobs"], steps=more["steps"], say=say,
                             home=world["home"], tag=f"s{number}-", home_vms=home_vms)
                home_vms -= made["home_vms"]
                seeded = {**goal, "steps": seeded["steps"] + made["steps"]}
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("ANALYZE")
                seed_seconds += time.perf_counter() - started
                say(f"Seeded in {seed_seconds:.1f} s so far; timing {len(endpoints)} "
                    f"endpoints, {requests} requests each")
                results = _time(clients, endpoints, requests)
                curve.append({"vms": seeded["vms"] + 2, "p95_ms": _p95s(results)})
            many = _queries(clients, endpoints)
            for row in results:
                row["queries_few"], row["queries_many"] = few[row["url"]], many[row["url"]]
            return {"run": name, "database": connection.vendor, "tenants": tenants + 1,
                    "subscriptions": subscriptions + 2, "vms": vms + 2, "jobs": jobs + 2,
                    "steps": seeded["steps"] + 10, "seed_seconds": round(seed_seconds, 1),
                    "requests": requests, "goal_p95_ms": GOAL_P95_MS, "results": results,
                    "curve": curve, "explain": _plans(world)}
    finally:
        if not keep:
            _clean(name)
            User.objects.filter(email=f"staff@{name}.example").delete()


def _p95s(results: list[dict]) -> dict[str, float]:
    return {f"{row['group']} {row['url']}": row["p95_ms"] for row in results}


def render(figures: dict) -> str:
    lines = [f"scale: {figures['tenants']} tenants, {figures['subscriptions']} subscriptions, "
             f"{figures['vms']} VMs, {figures['jobs']} jobs, {figures['steps']} steps on "
             f"{figures['database']} (seeded in {figures['seed_seconds']} s); "
             f"{figures['requests']} requests each",
             f"{'group':<16}{'endpoint':<58}{'status':>7}{'KB':>8}{'p50 ms':>8}{'p95 ms':>8}"
             f"{'queries':>9}{'at few':>8}"]
    for row in figures["results"]:
        url = row["url"] if len(row["url"]) <= 56 else row["url"][:53] + "..."
        flag = "" if row["p95_ms"] < figures["goal_p95_ms"] else "  over"
        if row["queries_many"] != row["queries_few"]:
            flag += "  queries grow"
        lines.append(f"{row['group']:<16}{url:<58}{row['status']:>7}"
                     f"{row['bytes'] / 1024:>8.1f}{row['p50_ms']:>8.1f}{row['p95_ms']:>8.1f}"
                     f"{row['queries_many']:>9}{row['queries_few']:>8}{flag}")
    over = [r for r in figures["results"] if r["p95_ms"] >= figures["goal_p95_ms"]]
    grow = [r for r in figures["results"] if r["queries_many"] != r["queries_few"]]
    lines.append(f"{len(figures['results']) - len(over)} of {len(figures['results'])} under "
                 f"{figures['goal_p95_ms']:.0f} ms at p95; query counts that grew with the "
                 f"rows: {len(grow)}")
    for title, plan in figures["explain"].items():
        lines += [f"EXPLAIN {title}:", *(f"  {line}" for line in plan.splitlines())]
    return "\n".join(lines)
