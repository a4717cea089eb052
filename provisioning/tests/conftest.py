"""A subscription on a stamp, row by row with the ORM: the state machines and the stuck
sweeper are tested without a fabric or a worker."""

import pytest

from conftest import unique
from fabric.models import Cloud, Stamp, Template
from plans.models import Plan, Subscription, SubscriptionState
from provisioning.models import (
    Job,
    JobState,
    Network,
    NetworkState,
    Site,
    SiteState,
    Snapshot,
    SnapshotState,
    VirtualMachine,
    VmState,
)
from tenants.models import Tenant

__all__ = ["job_on", "make_network", "make_snapshot", "make_subscription", "make_vm"]


def make_subscription() -> Subscription:
    """An active subscription whose primary site is ready, with its default network."""
    stamp = Stamp.objects.create(name=unique("unit-"), region="r", driver="memory",
                                 endpoint=f"mem://{unique('unit')}")
    cloud = Cloud.objects.create(name=unique("cloud-"), stamp=stamp, vcpus=64,
                                 memory_mb=65536, storage_gb=1000, vms=50)
    Template.objects.create(name="debian", os="Debian", cloud=cloud, image="img-debian")
    plan = Plan.objects.create(name=unique("Plan "), cloud=cloud)
    subscription = Subscription.objects.create(
        tenant=Tenant.objects.create(name=unique("Tenant ")), plan=plan, name="main",
        state=SubscriptionState.ACTIVE)
    Site.objects.create(subscription=subscription, cloud=cloud, state=SiteState.READY,
                        container_id="c1")
    make_network(subscription, name="default", state=NetworkState.READY, is_default=True,
                 quota_held=False)
    return subscription


def make_network(subscription: Subscription, *, name: str = "", state=NetworkState.READY,
                 **fields) -> Network:
    return Network.objects.create(subscription=subscription, name=name or unique("net-"),
                                  cidr=fields.pop("cidr", "10.0.0.0/24"), state=state, **fields)


def make_vm(subscription: Subscription, *, state=VmState.RUNNING, **fields) -> VirtualMachine:
    return VirtualMachine.objects.create(
        subscription=subscription, name=fields.pop("name", unique("vm-")),
        template=subscription.plan.cloud.templates.get(),
        network=subscription.networks.get(is_default=True), vcpus=1, memory_mb=512,
        disk_gb=10, state=state, **fields)


def make_snapshot(vm: VirtualMachine, *, state=SnapshotState.READY) -> Snapshot:
    return Snapshot.objects.create(vm=vm, name=unique("cp-"), state=state)


def job_on(resource, *, runbook: str, state=JobState.RUNNING, subscription=None) -> Job:
    """A job of ``runbook`` recorded on ``resource`` (None: on the subscription as a whole),
    as ``engine.enqueue`` records it."""
    subscription = subscription or resource.subscription
    return Job.objects.create(
        runbook=runbook, stamp=subscription.plan.cloud.stamp, subscription=subscription,
        tenant=subscription.tenant, state=state,
        resource_type=resource._meta.label_lower if resource is not None else "",
        resource_id=str(resource.pk) if resource is not None else "")


@pytest.fixture
def subscription(db) -> Subscription:
    return make_subscription()
