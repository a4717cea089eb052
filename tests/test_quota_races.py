"""Quota and capacity never break, whatever the concurrency (PostgreSQL row locks)."""

import contextlib
import itertools
import random
import threading

import pytest
from django.db import connection

from base.errors import QuotaExceeded
from conftest import unique
from fabric.models import CloudCapacity
from plans.models import QuotaLedger
from provisioning import resources
from provisioning.models import VirtualMachine, VmState
from tests.processes import race

pytestmark = [pytest.mark.services, pytest.mark.xdist_group("races")]
DIMENSIONS = {"vcpus": "vcpus", "memory_mb": "memory_mb", "storage_gb": "disk_gb"}


@pytest.fixture
def ready_subscription(postgres, transactional_db, signup, catalog, staff, commission):
    """``make(quotas)``: an active subscription, commissioned on the catalog's memory
    stamp (these tests stop at the ledger, before any job of theirs runs)."""
    from plans.models import Subscription

    roomy = catalog["post"]("clouds", {
        "name": unique("roomy-"), "stamp": catalog["stamp_a"]["id"],
        "capacity": {"vcpus": 1_000_000, "memory_mb": 1_000_000_000, "storage_gb": 10_000_000,
                     "vms": 100_000}})
    template = catalog["post"]("templates", {"name": "debian", "os": "Debian", "image": "d",
                                             "cloud": roomy["id"]})

    def make(quotas: dict, plan=None) -> Subscription:
        plan = plan or catalog["post"]("plans", {
            "name": unique("Race "), "state": "public", "cloud": roomy["id"],
            "quotas": quotas, "templates": [template["id"]]})
        owner = signup()
        sid = owner.post("/api/v1/subscriptions/", {"plan": plan["id"]},
                         format="json").json()["id"]
        commission(sid)
        subscription = Subscription.objects.select_related("plan", "tenant").get(pk=sid)
        subscription.template_id = plan["templates"][0] if plan["templates"] else None
        return subscription

    return make


def spec_for(subscription, template_id, rng, i):
    network = subscription.networks.get()
    return resources.VmSpec(name=f"vm-{i}", template_id=template_id,
                            vcpus=rng.randint(1, 4), memory_mb=rng.choice([512, 1024, 2048]),
                            disk_gb=rng.randint(10, 40), network_id=network.pk)


def assert_ledger_matches(subscription):
    live = list(VirtualMachine.objects.filter(subscription=subscription, quota_held=True))
    used = dict(QuotaLedger.objects.filter(subscription=subscription).values_list(
        "dimension", "used"))
    assert used["vms"] == len(live)
    for dimension, field in DIMENSIONS.items():
        assert used[dimension] == sum(getattr(vm, field) for vm in live), dimension


def test_fifty_concurrent_creates_against_a_quota_of_ten(ready_subscription, catalog):
    big = {"vcpus": 10_000, "memory_mb": 10_000_000, "storage_gb": 100_000, "vms": 10,
           "networks": 5, "snapshots": 5}
    rng = random.Random(20261123)
    for round_no in range(20):
        subscription = ready_subscription(big)
        template = subscription.template_id
        user = subscription.tenant.memberships.get().user
        specs = [spec_for(subscription, template, rng, i) for i in range(50)]
        # when fifty requests race
        results = race(50, lambda i, s=subscription, u=user, sp=specs: resources.create_vm(
            s, sp[i], acting_user=u))
        # then exactly ten got in, forty were told why, and the ledger is exact
        accepted = [r for r in results if isinstance(r, tuple)]
        refused = [r for r in results if isinstance(r, QuotaExceeded)]
        assert len(accepted) == 10 and len(refused) == 40, (round_no, results[:3])
        assert all(r.errors["vms"] == {"requested": 1, "used": 10, "limit": 10}
                   for r in refused)
        assert_ledger_matches(subscription)
        addresses = VirtualMachine.objects.filter(subscription=subscription).values_list(
            "ip_address", flat=True)
        assert len(set(addresses)) == 10


def test_concurrent_resizes_never_pass_the_vcpu_limit(ready_subscription, catalog):
    rng = random.Random(7)
    for _ in range(20):
        subscription = ready_subscription({"vcpus": 12, "memory_mb": 1_000_000,
                                           "storage_gb": 10_000, "vms": 6, "networks": 1,
                                           "snapshots": 1})
        template = subscription.template_id
        user = subscription.tenant.memberships.get().user
        vms = []
        for i in range(6):
            vm, _ = resources.create_vm(subscription, resources.VmSpec(
                f"r{i}", template, 1, 512, 10, subscription.networks.get().pk), acting_user=user)
            vms.append(vm)
        VirtualMachine.objects.filter(subscription=subscription).update(state=VmState.RUNNING)
        targets = [rng.randint(2, 4) for _ in vms]
        results = race(6, lambda i, v=vms, t=targets, u=user: resources.resize_vm(
            VirtualMachine.objects.get(pk=v[i].pk), vcpus=t[i], memory_mb=512, acting_user=u))
        used = QuotaLedger.objects.get(subscription=subscription, dimension="vcpus").used
        granted = sum(targets[i] - 1 for i, r in enumerate(results)
                      if not isinstance(r, Exception))
        assert used == 6 + granted <= 12
        assert all(isinstance(r, QuotaExceeded) for r in results if isinstance(r, Exception))


def test_two_subscriptions_race_for_the_last_capacity_of_a_cloud(ready_subscription, staff,
                                                                  catalog):
    # given a cloud with room for five VMs and two subscriptions that may have ten each
    cloud = catalog["post"]("clouds", {"name": unique("tiny-"),
                                       "stamp": catalog["stamp_a"]["id"],
                                       "capacity": {"vcpus": 100, "memory_mb": 100_000,
                                                    "storage_gb": 10_000, "vms": 5}})
    template = catalog["post"]("templates", {"name": "t", "os": "x", "image": "x",
                                             "cloud": cloud["id"]})
    plan = catalog["post"]("plans", {
        "name": unique("Tiny "), "state": "public", "cloud": cloud["id"],
        "templates": [template["id"]],
        "quotas": {"vcpus": 100, "memory_mb": 100_000, "storage_gb": 10_000, "vms": 10,
                   "networks": 1, "snapshots": 1}})
    first, second = ready_subscription({}, plan=plan), ready_subscription({}, plan=plan)
    users = [s.tenant.memberships.get().user for s in (first, second)]
    subs = [first, second]
    # when each asks for eight VMs at once
    results = race(16, lambda i: resources.create_vm(
        subs[i % 2], resources.VmSpec(f"c{i}", template["id"], 1, 512, 10,
                                      subs[i % 2].networks.get().pk),
        acting_user=users[i % 2]))
    # then the cloud gave out exactly its five
    assert sum(isinstance(r, tuple) for r in results) == 5
    capacity = CloudCapacity.objects.get(cloud_id=cloud["id"], dimension="vms")
    assert capacity.used == 5 == VirtualMachine.objects.filter(
        subscription__in=subs).count()
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert all("provider's cloud" in r.detail for r in refused)
    for subscription in subs:
        assert_ledger_matches(subscription)


def test_the_ledger_refuses_to_go_negative_in_the_database(postgres, transactional_db,
                                                           ready_subscription):
    from django.db import IntegrityError

    subscription = ready_subscription({"vms": 1})
    with pytest.raises(IntegrityError), connection.cursor() as cursor:
        cursor.execute("UPDATE plans_quotaledger SET used = -1 WHERE subscription_id = %s",
                       [subscription.pk])


@contextlib.contextmanager
def held_open(action):
    """Run ``action`` in a transaction of another thread, kept open (then rolled back)
    while the block runs."""
    from django.db import connections, transaction

    ready, done = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                action()
                ready.set()
                done.wait(timeout=30)
                transaction.set_rollback(True)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert ready.wait(timeout=30)
        yield
    finally:
        done.set()
        holder.join(timeout=30)


def test_a_create_does_not_wait_for_the_address_another_is_claiming(ready_subscription):
    from django.db import transaction

    from provisioning import holdings

    subscription = ready_subscription({"vcpus": 8, "memory_mb": 8192, "storage_gb": 100,
                                       "vms": 4, "networks": 1, "snapshots": 1})
    network = subscription.networks.get()
    first_free = next(holdings.free_addresses(network))
    def claim_first():
        holdings.claim_address(network, VirtualMachine(network=network), [first_free])

    # given a create that claimed the first free address, its transaction still open; when
    # another create looks for an address meanwhile, unable to wait for locks
    with held_open(claim_first), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '2s'")
        address = holdings.claim_address(
            network, VirtualMachine(network=network), holdings.free_addresses(network))
        transaction.set_rollback(True)
    # then it got the next address at once instead of queueing behind the first
    assert address != first_free


def test_a_create_the_quota_refuses_never_locks_the_clouds_capacity(ready_subscription):
    from django.db import transaction

    from plans import quota

    subscription = ready_subscription({"vcpus": 8, "memory_mb": 8192, "storage_gb": 100,
                                       "vms": 0, "networks": 1, "snapshots": 1})
    cloud_id = subscription.plan.cloud_id

    def refused_create():
        with pytest.raises(QuotaExceeded):
            quota.reserve(subscription, {"vcpus": 1, "vms": 1}, cloud_id=cloud_id)

    # given a reservation the quota refused (no room for a VM), its transaction still open;
    # when another transaction locks the cloud's rows without waiting
    with held_open(refused_create), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT used FROM fabric_cloudcapacity WHERE cloud_id = %s "
                       "AND dimension IN ('vcpus', 'vms') FOR UPDATE NOWAIT", [cloud_id])
        used = sorted(row[0] for row in cursor.fetchall())
    # then it got them at once: the refused reservation never locked them, nor took any
    assert used == [0, 0]


def test_the_one_statement_claim_skips_addresses_being_claimed_and_reads_past_its_window(
        ready_subscription, monkeypatch):
    from django.db import transaction

    from provisioning import holdings

    subscription = ready_subscription({"vcpus": 8, "memory_mb": 8192, "storage_gb": 100,
                                       "vms": 4, "networks": 1, "snapshots": 1})
    network = subscription.networks.get()
    first, second, third = list(itertools.islice(holdings.free_addresses(network), 3))
    # a window of one host past those held: the claims below exhaust it
    monkeypatch.setattr(holdings, "_CLAIM_WINDOW", 2)

    def claim_two():
        for address in (first, second):
            holdings.claim_address(network, VirtualMachine(network=network), [address])

    # given another create claiming the first two free hosts, its transaction still open;
    # when a create claims the network's first free host meanwhile, unable to wait
    with held_open(claim_two), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '2s'")
        address = holdings.claim_free_address(network, VirtualMachine(network=network))
        transaction.set_rollback(True)
    # then it got the next one (read past the window: the first two of it being claimed),
    # never the gateway
    assert address == third != network.gateway_address
    # and with nothing claimed, the first free host in one statement
    with transaction.atomic():
        assert holdings.claim_free_address(network, VirtualMachine(network=network)) == first
        transaction.set_rollback(True)


def test_the_one_statement_claim_takes_the_first_hole_else_the_host_after_the_last(
        ready_subscription):
    from django.db import transaction

    from provisioning import holdings
    from provisioning.models import NetworkAddress

    subscription = ready_subscription({"vcpus": 8, "memory_mb": 8192, "storage_gb": 100,
                                       "vms": 4, "networks": 1, "snapshots": 1})
    network = subscription.networks.get()
    hosts = list(itertools.islice(holdings.free_addresses(network), 100))

    def claim() -> str:
        with transaction.atomic():
            address = holdings._claim_first_on_postgresql(network,
                                                          VirtualMachine(network=network))
            transaction.set_rollback(True)
        return address

    # given the network's first 100 free hosts held, but for two holes
    NetworkAddress.objects.bulk_create(NetworkAddress(network=network, address=a)
                                       for a in hosts if a not in (hosts[40], hosts[70]))
    # then the claim takes the first hole, then the next, then the host after the last
    assert claim() == hosts[40]
    NetworkAddress.objects.create(network=network, address=hosts[40])
    assert claim() == hosts[70]
    NetworkAddress.objects.create(network=network, address=hosts[70])
    assert claim() == next(holdings.free_addresses(network))
    assert claim() not in hosts and claim() != network.gateway_address
    # and with the network's first free host given back, that one
    NetworkAddress.objects.filter(network=network, address=hosts[0]).delete()
    assert claim() == hosts[0]


def test_a_create_whose_name_another_committed_meanwhile_is_told_and_leaves_nothing(
        ready_subscription):
    import time

    from django.db import connections, transaction

    from base.errors import Invalid

    subscription = ready_subscription({"vcpus": 8, "memory_mb": 8192, "storage_gb": 100,
                                       "vms": 4, "networks": 1, "snapshots": 1})
    user = subscription.tenant.memberships.get().user
    network = subscription.networks.get()

    def spec():
        return resources.VmSpec("web", subscription.template_id, 1, 512, 10, network.pk)

    outcome, written, blocked = {}, threading.Event(), threading.Event()

    def first_create():
        # A create of "web" that commits only once the other one waits on its row.
        try:
            with transaction.atomic():
                resources.create_vm(subscription, spec(), acting_user=user)
                written.set()
                outcome["first"] = blocked.wait(timeout=30)
        finally:
            written.set()
            connections.close_all()

    # given a create of "web" not yet committed, that commits once a second create of the
    # same name waits on the database's live-name constraint
    first = threading.Thread(target=first_create)
    first.start()
    try:
        assert written.wait(timeout=30)
        with connections["default"].cursor() as cursor:
            deadline = time.monotonic() + 30
            cursor.execute("SELECT pg_backend_pid()")
            me = cursor.fetchone()[0]

            def watch():
                from django.db import connections as conns
                try:
                    with conns["default"].cursor() as watcher:
                        while time.monotonic() < deadline and not blocked.is_set():
                            watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                                            "pid = %s AND wait_event_type = 'Lock'", [me])
                            if watcher.fetchone()[0]:
                                blocked.set()
                            time.sleep(0.01)  # polling interval, bounded by the deadline
                finally:
                    conns.close_all()

            watcher = threading.Thread(target=watch)
            watcher.start()
            # when the second create, having passed the name check, writes its row
            with pytest.raises(Invalid) as refused:
                resources.create_vm(subscription, spec(), acting_user=user)
            watcher.join(timeout=30)
    finally:
        blocked.set()
        first.join(timeout=30)
    # then it waited for the first one, and was told the name is used, not a server error
    assert outcome == {"first": True}
    assert refused.value.errors == {"name": ["Already used."]}
    # and it left nothing: one VM, one address, the quota of one VM
    assert list(subscription.vms.values_list("name", flat=True)) == ["web"]
    assert network.addresses.count() == 1
    assert QuotaLedger.objects.get(subscription=subscription, dimension="vms").used == 1
