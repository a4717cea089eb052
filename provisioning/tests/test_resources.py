"""Tenant resources on their own: what creating and giving back a VM holds in the ledgers.
The job that does the fabric's part is recorded, not run."""

import dataclasses
from functools import partial

import pytest

from base import prepared
from base.errors import Conflict, Invalid, NotFound
from base.models import AuditEvent
from fabric.models import CloudCapacity
from fabric.tests.factories import CloudFactory, TemplateFactory
from plans import quota
from plans.models import SubscriptionState
from plans.tests.factories import PlanFactory
from provisioning import holdings, lifecycle, resources
from provisioning.models import Job, JobState, NetworkAddress, VirtualMachine
from provisioning.runbooks import vm as vm_runbooks
from provisioning.tests.factories import (
    CommissionedSubscriptionFactory,
    NetworkFactory,
    VirtualMachineFactory,
)
from tenants.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription():
    """A commissioned subscription of a plan with one image."""
    cloud = CloudFactory(default_network_cidr="10.0.0.0/24")
    image = TemplateFactory(cloud=cloud, name="debian-12")
    return CommissionedSubscriptionFactory(plan=PlanFactory(cloud=cloud, templates=[image]))


def spec(subscription, network=None, **size) -> resources.VmSpec:
    network = network or subscription.networks.get(is_default=True)
    size = {"vcpus": 2, "memory_mb": 1024, "disk_gb": 20, **size}
    return resources.VmSpec(name="web-1", template_id=subscription.plan.templates.get().pk,
                            network_id=network.pk, **size)


def cloud_used(subscription, dimension: str) -> int:
    return CloudCapacity.objects.get(cloud=subscription.plan.cloud, dimension=dimension).used


def test_a_new_vm_holds_quota_cloud_capacity_and_an_address_until_given_back(subscription):
    # when a VM is asked for
    vm, job = resources.create_vm(subscription, spec(subscription), acting_user=None)
    # then its size is held in both ledgers, it has the first free address, and a job
    assert quota.summary(subscription)["vcpus"] == {"limit": 8, "used": 2, "burst": 0}
    assert cloud_used(subscription, "vcpus") == 2
    assert vm.ip_address == "10.0.0.2"  # .1 is the gateway
    assert (job.runbook, job.state, job.resource_id) == ("vm.create", JobState.QUEUED,
                                                         str(vm.pk))
    # when what it holds is given back, twice (a retried job)
    holdings.give_back(vm)
    holdings.give_back(vm)
    # then it is given back once
    assert quota.summary(subscription)["vcpus"] == {"limit": 8, "used": 0, "burst": 0}
    assert cloud_used(subscription, "vcpus") == 0
    assert not NetworkAddress.objects.filter(vm=vm).exists()


def test_the_free_addresses_are_the_hosts_no_vm_of_the_network_holds_in_order(subscription):
    # given a /29 (hosts .1 to .6, .1 the gateway) whose .2 and .4 are held, and another
    # network holding .3 of the same range
    network = NetworkFactory(subscription=subscription, cidr="10.9.0.0/29", state="ready")
    other = NetworkFactory(subscription=subscription, cidr="10.9.0.0/29", state="ready")
    for held, address in ((network, "10.9.0.2"), (network, "10.9.0.4"), (other, "10.9.0.3")):
        NetworkAddress.objects.create(network=held, address=address)
    # then the free hosts are the others, in order, a preferred one first
    assert list(holdings.free_addresses(network)) == ["10.9.0.3", "10.9.0.5", "10.9.0.6"]
    assert list(holdings.free_addresses(network, prefer="10.9.0.6"))[0] == "10.9.0.6"
    # and a claim takes the first, then the next
    vms = VirtualMachineFactory.create_batch(4, subscription=subscription, network=network)
    assert [holdings.claim_free_address(network, vm) for vm in vms[:3]] == [
        "10.9.0.3", "10.9.0.5", "10.9.0.6"]
    with pytest.raises(Conflict):
        holdings.claim_free_address(network, vms[3])


def test_a_vm_on_a_network_still_being_made_waits_for_the_networks_job(subscription):
    # given a network whose create job has not run yet
    network, network_job = resources.create_network(subscription, name="back",
                                                    cidr="10.5.0.0/24", acting_user=None)
    # when a VM is asked for on it
    vm, job = resources.create_vm(subscription, spec(subscription, network), acting_user=None)
    # then it is accepted: its quota is held and its job waits for the network's
    assert vm.network_id == network.pk and vm.ip_address == "10.5.0.2"
    assert quota.summary(subscription)["vms"]["used"] == 1
    assert (job.state, job.after_id) == (JobState.QUEUED, network_job.pk)
    assert job.is_waiting


def test_a_vm_on_a_failed_network_is_refused_and_holds_nothing(subscription):
    # given a network whose create job was undone
    network = NetworkFactory(subscription=subscription, cidr="10.5.0.0/24", state="failed")
    # when a VM is asked for on it
    with pytest.raises(Invalid) as refused:
        resources.create_vm(subscription, spec(subscription, network), acting_user=None)
    # then the network is named, and nothing was made or reserved
    assert refused.value.errors == {"network": ["The network is failed."]}
    assert not VirtualMachine.objects.filter(subscription=subscription).exists()
    assert quota.summary(subscription)["vms"]["used"] == 0


def test_work_asked_for_while_the_subscription_is_provisioning_waits_for_the_commission():
    # given a subscription just subscribed: its commission job has not run
    cloud = CloudFactory(default_network_cidr="10.0.0.0/24")
    plan = PlanFactory(cloud=cloud, templates=[TemplateFactory(cloud=cloud, name="debian-12")])
    owner = MembershipFactory()
    subscription, commission = lifecycle.subscribe(owner.tenant, plan_id=plan.pk, name="new",
                                                   acting_user=owner.user)
    assert subscription.state == SubscriptionState.PROVISIONING
    # when a VM is asked for without a network, and a network
    asked = dataclasses.replace(spec(subscription), network_id=None)
    vm, vm_job = resources.create_vm(subscription, asked, acting_user=owner.user)
    network, network_job = resources.create_network(subscription, name="back",
                                                    cidr="10.5.0.0/24", acting_user=owner.user)
    # then both are accepted, hold their quota, and wait for the commission; the VM is on
    # the default network that the commission is making
    default = subscription.networks.get(is_default=True)
    assert (default.state, vm.network_id, vm.ip_address) == ("provisioning", default.pk,
                                                             "10.0.0.2")
    assert vm_job.after_id == network_job.after_id == commission.pk
    assert quota.summary(subscription)["vms"]["used"] == 1
    assert quota.summary(subscription)["networks"]["used"] == 1


def test_a_vm_asked_for_without_a_network_goes_on_the_default_one(subscription):
    # given the subscription's default network and another one of its own
    default = subscription.networks.get(is_default=True)
    NetworkFactory(subscription=subscription, cidr="10.6.0.0/24")
    # when a VM is asked for without naming a network
    asked = dataclasses.replace(spec(subscription), network_id=None)
    vm, _ = resources.create_vm(subscription, asked, acting_user=None)
    # then it is on the default network, with its first free address
    assert vm.network_id == default.pk and vm.ip_address == "10.0.0.2"


def test_without_a_default_network_the_error_says_to_name_one(subscription):
    # given a subscription whose default network is gone
    asked = dataclasses.replace(spec(subscription), network_id=None)
    subscription.networks.filter(is_default=True).update(is_default=False)
    # when a VM is asked for without a network / then the error names the field
    with pytest.raises(Invalid) as refused:
        resources.create_vm(subscription, asked, acting_user=None)
    assert refused.value.errors == {"network": ["The subscription has no default network; "
                                                "name one."]}


def test_a_vm_create_takes_the_rows_others_wait_on_last_in_few_statements(subscription):
    # given a subscription whose plan and ledgers are already in use
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    resources.create_vm(subscription, spec(subscription), acting_user=None)
    subscription = type(subscription).objects.select_related("plan").get(pk=subscription.pk)
    second = dataclasses.replace(spec(subscription), name="web-2")
    # when another VM is asked for
    with CaptureQueriesContext(connection) as queries:
        resources.create_vm(subscription, second, acting_user=None)
    statements = [s.replace('"', "") for s in prepared.as_written(queries)]
    writes = [" ".join(s.split(None, 3)[:3]) for s in statements
              if s.startswith(("INSERT", "UPDATE", "WITH"))]
    # then the address is claimed first (a claim makes no other create wait), and the
    # quota and the cloud's capacity are taken last, so concurrent creates wait on them
    # only until the commit: on PostgreSQL in one statement, which also writes the VM,
    # its job and steps and its audit row, the capacity's rows after the quota's
    reservation = ["UPDATE plans_quotaledger SET", "UPDATE fabric_cloudcapacity SET"]
    rows = ["INSERT INTO provisioning_virtualmachine", "INSERT INTO provisioning_job",
            "INSERT INTO provisioning_jobstep", "INSERT INTO base_auditevent"]
    if connection.vendor == "postgresql":
        assert writes == ["INSERT INTO provisioning_networkaddress", "WITH w_0 AS"]
        statement = statements[-2]
        assert statement.startswith("WITH w_0 AS") and statements[-1].startswith("RELEASE")
        order = [statement.index(part) for part in [*rows, *reservation]]
        assert order == sorted(order)
    else:
        assert writes == ["INSERT INTO provisioning_networkaddress", *rows, *reservation]
    # and it reads in one statement (the subscription, its plan, the template, the
    # network, the active site, whether the name is used) before it writes; on SQLite the
    # network's free addresses follow
    reads = [s for s in statements if s.startswith("SELECT")]
    assert len(reads) == (1 if connection.vendor == "postgresql" else 2), reads
    assert reads[0].startswith("SELECT s.id") and statements.index(reads[0]) <= 1
    # and the whole create is a bounded number of round trips: on PostgreSQL the read, the
    # address and the rest, between the savepoint and its release
    most = 5 if connection.vendor == "postgresql" else 13
    assert len(statements) <= most, [" ".join(s.split()[:3]) for s in statements]


def test_a_create_finds_only_a_subscription_of_the_callers_tenant_that_is_not_deleted(
        subscription):
    other = CommissionedSubscriptionFactory(plan=subscription.plan)
    refused = {"subscription": ["Not a subscription of yours."]}
    # when a tenant asks for a VM on another tenant's subscription
    with pytest.raises(Invalid) as asked:
        resources.create_vm(subscription.pk, spec(subscription), acting_user=None,
                            tenant=other.tenant)
    # then it is told there is no such subscription of its own, and nothing is written
    assert asked.value.errors == refused
    # when it asks on its own subscription, deleted
    type(subscription).objects.filter(pk=subscription.pk).update(
        state=SubscriptionState.DELETED)
    with pytest.raises(Invalid) as asked:
        resources.create_vm(subscription.pk, spec(subscription), acting_user=None,
                            tenant=subscription.tenant)
    # then the same, and no VM is left of either
    assert asked.value.errors == refused
    assert not VirtualMachine.objects.filter(subscription=subscription).exists()
    assert quota.summary(subscription)["vms"]["used"] == 0


def test_a_create_reads_what_it_checks_as_the_orm_would(subscription):
    # given a VM of the name, deleted, and a network that is not the default
    from provisioning.reads import vm_create_reads

    resources.create_vm(subscription, spec(subscription), acting_user=None)
    VirtualMachine.objects.filter(name="web-1").update(state="deleted")
    network = NetworkFactory(subscription=subscription, cidr="10.9.0.0/24")
    template = subscription.plan.templates.get()
    # when a create of that name reads what it needs, on the default network and on the
    # other one, with the plan's template and with another
    default = vm_create_reads(subscription.pk, template_id=template.pk, network_id=None,
                              name="web-1")
    named = vm_create_reads(subscription.pk, template_id=TemplateFactory().pk,
                            network_id=network.pk, name="web-1")
    # then each finds the subscription with its plan, the network asked for with the
    # subscription's active site (its cloud and stamp), the template only if the plan
    # offers it, and a deleted VM does not take the name
    site = subscription.sites.get(is_active=True)
    assert default.subscription == subscription and default.subscription.plan == \
        subscription.plan
    assert default.template == template and named.template is None
    assert default.network.is_default and named.network == network
    assert default.network.active_site == site == named.network.active_site
    assert default.network.active_site.cloud.stamp == subscription.plan.cloud.stamp
    assert not default.name_taken
    # and a live VM of the name takes it
    VirtualMachine.objects.filter(name="web-1").update(state="running")
    assert vm_create_reads(subscription.pk, template_id=template.pk, network_id=None,
                           name="web-1").name_taken


def _running_vm(subscription) -> VirtualMachine:
    vm, _ = resources.create_vm(subscription, spec(subscription), acting_user=None)
    VirtualMachine.objects.filter(pk=vm.pk).update(state="running")
    return vm


def test_a_vm_delete_reads_once_and_writes_once(subscription):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    vm = _running_vm(subscription)
    before = VirtualMachine.objects.get(pk=vm.pk).state_changed_at
    # when a tenant deletes it by its id
    asked = VirtualMachine(pk=vm.pk)
    with CaptureQueriesContext(connection) as queries:
        job = resources.delete_vm(asked, acting_user=None, tenant=subscription.tenant)
    statements = [s.replace('"', "") for s in prepared.as_written(queries)]
    shapes = [" ".join(s.split(None, 3)[:3]) for s in statements[1:-1]]
    # then the VM (with what the change needs) is read under lock in one statement, and
    # its UPDATE carries the job, its steps and the audit row: on PostgreSQL in its round
    # trip, elsewhere just before it
    assert statements[1].startswith("SELECT v.id")
    if connection.vendor == "postgresql":
        assert statements[1].endswith("FOR UPDATE OF v")
        assert shapes == ["SELECT v.id, v.subscription_id,", "WITH w_0 AS"]
        assert "UPDATE provisioning_virtualmachine SET" in statements[2]
    else:
        assert shapes == ["SELECT v.id, v.subscription_id,",
                          "INSERT INTO provisioning_job", "INSERT INTO provisioning_jobstep",
                          "INSERT INTO base_auditevent",
                          "UPDATE provisioning_virtualmachine SET"]
    # and what was written is what the ORM would have written: the instance asked with is
    # the VM as the change left it
    stored = VirtualMachine.objects.get(pk=vm.pk)
    assert asked.state == stored.state == "deleting" and asked.name == "web-1"
    assert stored.state_changed_at > before and stored.ip_address == vm.ip_address
    assert job.steps.count() == len(vm_runbooks.DELETE.steps) and job.tenant_id == \
        subscription.tenant_id
    audit = AuditEvent.objects.get(event="vm.deleting", object_id=str(vm.pk))
    assert audit.detail["job"] == str(job.pk)
    assert (audit.before, audit.after, audit.tenant_id) == (
        {"state": "running"}, {"state": "deleting"}, subscription.tenant_id)


def test_a_vm_change_finds_only_a_live_vm_of_the_callers_tenant(subscription):
    vm = _running_vm(subscription)
    other = CommissionedSubscriptionFactory(plan=subscription.plan)
    # when another tenant, or anyone with what is not an id, asks to delete or stop it
    for asked, tenant in ((vm.pk, other.tenant), ("not-an-id", subscription.tenant)):
        for change in (resources.delete_vm, partial(resources.vm_power, action="stop")):
            with pytest.raises(NotFound):
                change(VirtualMachine(pk=asked), acting_user=None, tenant=tenant)
    # then nothing was changed or recorded
    assert VirtualMachine.objects.get(pk=vm.pk).state == "running"
    assert not Job.objects.filter(resource_id=str(vm.pk)).exclude(
        runbook=vm_runbooks.CREATE.name).exists()
    # and a deleted VM is not found by its tenant; without a tenant (the provider's
    # side) it is, and its state refuses the change
    VirtualMachine.objects.filter(pk=vm.pk).update(state="deleted")
    with pytest.raises(NotFound):
        resources.delete_vm(VirtualMachine(pk=vm.pk), acting_user=None,
                            tenant=subscription.tenant)
    with pytest.raises(Conflict):
        resources.delete_vm(VirtualMachine(pk=vm.pk), acting_user=None)


def test_a_vm_whose_state_changed_under_the_change_leaves_nothing_written(
        subscription, monkeypatch):
    from django_fsm import ConcurrentTransition

    from provisioning import reads

    vm = _running_vm(subscription)
    read = reads.vm_change_reads

    def stale(vm_id, **kwargs):
        # another writer that ignored the lock: the row is no longer what was read
        got = read(vm_id, **kwargs)
        VirtualMachine.objects.filter(pk=vm_id).update(state="stopped")
        return got

    monkeypatch.setattr(reads, "vm_change_reads", stale)
    jobs = Job.objects.count()
    # when the VM is deleted from the state it was read in
    with pytest.raises(ConcurrentTransition):
        resources.delete_vm(vm, acting_user=None)
    # then it is refused and nothing of it is left: no job, no audit row (the other write,
    # made in its transaction, went with it)
    assert VirtualMachine.objects.get(pk=vm.pk).state == "running"
    assert Job.objects.count() == jobs
    assert not AuditEvent.objects.filter(event="vm.deleting").exists()


def test_a_vm_change_reads_what_it_needs_as_the_orm_would(subscription):
    from provisioning.reads import vm_change_reads

    vm = _running_vm(subscription)
    # when a change of the VM reads it
    read = vm_change_reads(vm.pk, tenant=subscription.tenant)
    # then it has the VM as stored, its subscription with the plan, its template, and the
    # subscription's active site with its cloud and stamp
    stored = VirtualMachine.objects.select_related("subscription__plan", "template").get(
        pk=vm.pk)
    fields = [f.attname for f in VirtualMachine._meta.concrete_fields]
    assert [getattr(read.vm, f) for f in fields] == [getattr(stored, f) for f in fields]
    assert read.vm.subscription == subscription and read.vm.subscription.plan == \
        subscription.plan
    assert read.vm.template == stored.template
    assert read.site == subscription.sites.get(is_active=True)
    assert read.site.cloud.stamp == subscription.plan.cloud.stamp
    # and without an active site, None in its place
    subscription.sites.update(is_active=False)
    assert vm_change_reads(vm.pk).site is None


def test_a_vm_step_reads_the_vm_as_the_orm_would_with_the_site_it_names(subscription):
    from provisioning.models import Site
    from provisioning.reads import vm_step_reads

    vm, _ = resources.create_vm(subscription, spec(subscription), acting_user=None)
    site = subscription.sites.get(is_active=True)
    # when a step of its job reads it, with its site and without
    read, read_site = vm_step_reads(vm.pk, site_id=site.pk)
    alone, no_site = vm_step_reads(str(vm.pk))
    # then the VM, its network, template, subscription and plan are the ORM's
    stored = VirtualMachine.objects.select_related(
        "network", "template", "subscription__plan").get(pk=vm.pk)
    for got in (read, alone):
        for part, model in ((got, stored), (got.network, stored.network),
                            (got.template, stored.template),
                            (got.subscription, stored.subscription),
                            (got.subscription.plan, stored.subscription.plan)):
            fields = [f.attname for f in type(model)._meta.concrete_fields]
            assert [getattr(part, f) for f in fields] == [getattr(model, f) for f in fields]
    assert read_site == site and read_site.container_id == site.container_id
    assert no_site is None
    # and a VM or a site that is not there is the ORM's DoesNotExist
    with pytest.raises(VirtualMachine.DoesNotExist):
        vm_step_reads(site.pk)
    with pytest.raises(Site.DoesNotExist):
        vm_step_reads(vm.pk, site_id=vm.pk)


def test_a_vm_create_job_reads_the_vm_once_a_step_and_once_at_its_end(subscription):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from fabric.services import driver_for
    from provisioning import engine

    # given the subscription's container and network on its stamp, and a VM asked for
    site = subscription.sites.get(is_active=True)
    driver = driver_for(site.cloud.stamp)
    container = driver.create_container(key=f"c-{site.pk}", name="sub")
    subscription.sites.filter(pk=site.pk).update(container_id=container.id)
    network = subscription.networks.get(is_default=True)
    made = driver.create_network(key=f"n-{network.pk}", container_id=container.id,
                                 name=network.name, cidr=network.cidr)
    subscription.networks.filter(pk=network.pk).update(fabric_id=made.id)
    vm, job = resources.create_vm(subscription, spec(subscription), acting_user=None)
    # when a worker runs the create job
    with CaptureQueriesContext(connection) as queries:
        engine.run(job.pk, worker="w1")
    # then the VM runs on the fabric, and its end is in the audit
    stored = VirtualMachine.objects.get(pk=vm.pk)
    ended = Job.objects.get(pk=job.pk)
    assert ended.state == JobState.SUCCEEDED, ended.error
    assert stored.state == "running" and stored.fabric_id
    assert AuditEvent.objects.filter(event="vm.created", object_id=str(vm.pk)).count() == 1
    # and the VM was read twice: by the step, with its network, template and site in one
    # statement, and by the end, under lock, with what a change reads
    statements = [s.replace('"', "") for s in prepared.as_written(queries)]
    reads = [s for s in statements
             if s.startswith("SELECT") and "FROM provisioning_virtualmachine" in s]
    assert len(reads) == 2, statements
    assert "JOIN provisioning_site si ON si.id =" in reads[0]
    if connection.vendor == "postgresql":
        assert reads[1].endswith("FOR UPDATE OF v")
        # and every statement but the transaction's own is prepared, none compiled anew
        assert all(q["sql"].startswith(("EXECUTE buffet_", "PREPARE buffet_", "BEGIN",
                                        "COMMIT", "SAVEPOINT", "RELEASE"))
                   for q in queries.captured_queries), statements


def test_the_end_of_a_delete_job_gives_all_back_once_in_few_statements(subscription):
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    vm = _running_vm(subscription)
    job = resources.delete_vm(vm, acting_user=None)
    # when the delete job has deleted the VM from the fabric and ends
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        vm_runbooks.DELETE.on_success(job)
    # then the VM is deleted, its quota, capacity and address are given back, and its
    # end is in the audit
    stored = VirtualMachine.objects.get(pk=vm.pk)
    assert stored.state == "deleted" and not stored.quota_held
    assert quota.summary(subscription)["vms"]["used"] == 0
    assert cloud_used(subscription, "vcpus") == 0
    assert not NetworkAddress.objects.filter(vm=vm).exists()
    assert AuditEvent.objects.filter(event="vm.deleted", object_id=str(vm.pk)).count() == 1
    # and the VM is read once, under lock, and its UPDATE carries the audit row on
    # PostgreSQL; the release of the quota and the capacity takes no savepoint of its own
    statements = [s.replace('"', "") for s in prepared.as_written(queries)]
    assert sum(s.startswith("SELECT") and "FROM provisioning_virtualmachine" in s
               for s in statements) == 1
    assert sum(s.startswith("SAVEPOINT") for s in statements) == 1
    if connection.vendor == "postgresql":
        last = next(s for s in statements if "UPDATE provisioning_virtualmachine SET state" in s)
        assert last.startswith("WITH w_0 AS (INSERT INTO base_auditevent")
    # and a second end gives nothing back twice
    holdings.give_back(stored)
    assert quota.summary(subscription)["vms"]["used"] == 0
