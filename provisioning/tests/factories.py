"""Factories of what a subscription has on a stamp (sites, networks, VMs, checkpoints) and
of the runbook engine's jobs.

A factory's row is what a worker would have left: no job runs, and nothing is reserved in
the quota ledger, so the rows hold no quota (``quota_held=False``) unless a test says so.
A test that needs the ledger to count a resource makes it through
``provisioning.resources``. (Why factories live in each app: see
``tenants.tests.factories``.)

    subscription = CommissionedSubscriptionFactory(plan=plan)   # site ready, default network
    VirtualMachineFactory(subscription=subscription, network=network, state=VmState.RUNNING)
    JobFactory(subscription=subscription, resource=vm, state=JobState.SUCCEEDED)
"""

import ipaddress

import factory
from factory.django import DjangoModelFactory

from fabric.tests.factories import StampFactory, TemplateFactory
from plans.tests.factories import SubscriptionFactory
from provisioning.models import (
    Job,
    JobStep,
    Network,
    NetworkState,
    Site,
    SiteRole,
    SiteState,
    Snapshot,
    SnapshotState,
    VirtualMachine,
)

__all__ = ["CommissionedSubscriptionFactory", "JobFactory", "JobStepFactory", "NetworkFactory",
           "SiteFactory", "SnapshotFactory", "VirtualMachineFactory"]


def _first_host(cidr: str) -> str:
    return str(next(ipaddress.ip_network(cidr).hosts()))


class SiteFactory(DjangoModelFactory):
    """The subscription's primary site on its plan's cloud, being commissioned;
    ``ready=True`` as the commission leaves it, ``recovery=True`` for a DR site."""

    class Meta:
        model = Site

    subscription = factory.SubFactory(SubscriptionFactory)
    cloud = factory.LazyAttribute(lambda site: site.subscription.plan.cloud)
    role = SiteRole.PRIMARY
    is_active = True
    state = SiteState.PROVISIONING

    class Params:
        ready = factory.Trait(
            state=SiteState.READY,
            container_id=factory.Sequence(lambda n: f"container-{n}"),
            gateway_id=factory.Sequence(lambda n: f"gateway-{n}"),
            network_id=factory.Sequence(lambda n: f"routed-{n}"),
            network_cidr=factory.LazyAttribute(lambda site: site.cloud.default_network_cidr))
        recovery = factory.Trait(role=SiteRole.RECOVERY, is_active=False)


class NetworkFactory(DjangoModelFactory):
    """A tenant network being created; ``ready=True`` once its job has run, and
    ``default=True`` for the one the commission makes."""

    class Meta:
        model = Network

    subscription = factory.SubFactory(SubscriptionFactory)
    name = factory.Sequence(lambda n: f"net-{n}")
    cidr = factory.Sequence(lambda n: f"10.{100 + n // 256 % 150}.{n % 256}.0/24")
    gateway_address = factory.LazyAttribute(lambda network: _first_host(network.cidr))
    state = NetworkState.PROVISIONING
    quota_held = False

    class Params:
        ready = factory.Trait(state=NetworkState.READY,
                              fabric_id=factory.Sequence(lambda n: f"network-{n}"))
        default = factory.Trait(
            name="default", is_default=True, state=NetworkState.READY,
            cidr=factory.LazyAttribute(
                lambda network: network.subscription.plan.cloud.default_network_cidr),
            fabric_id=factory.Sequence(lambda n: f"routed-{n}"))


class CommissionedSubscriptionFactory(SubscriptionFactory):
    """A subscription as its commission job leaves it: the primary site ready, the
    default network made."""

    class Meta:
        skip_postgeneration_save = True

    site = factory.RelatedFactory(SiteFactory, factory_related_name="subscription", ready=True)
    default_network = factory.RelatedFactory(NetworkFactory, factory_related_name="subscription",
                                             default=True)


class VirtualMachineFactory(DjangoModelFactory):
    """A small VM being provisioned, from an image of its plan's cloud on a ready network of
    its subscription; pass ``state`` for one further on."""

    class Meta:
        model = VirtualMachine

    subscription = factory.SubFactory(SubscriptionFactory)
    name = factory.Sequence(lambda n: f"vm-{n}")
    template = factory.SubFactory(TemplateFactory,
                                  cloud=factory.SelfAttribute("..subscription.plan.cloud"))
    network = factory.SubFactory(NetworkFactory, ready=True,
                                 subscription=factory.SelfAttribute("..subscription"))
    vcpus = 1
    memory_mb = 512
    disk_gb = 10
    quota_held = False


class SnapshotFactory(DjangoModelFactory):
    class Meta:
        model = Snapshot

    vm = factory.SubFactory(VirtualMachineFactory)
    name = factory.Sequence(lambda n: f"checkpoint-{n}")
    state = SnapshotState.READY
    fabric_id = factory.Sequence(lambda n: f"snapshot-{n}")
    quota_held = False


class JobFactory(DjangoModelFactory):
    """A job of a runbook, queued unless told; it acts on ``resource`` (any model row) and
    runs on its subscription's stamp (a stamp of its own without a subscription). It has no
    steps: add them with ``JobStepFactory``."""

    class Meta:
        model = Job

    runbook = "vm.create"
    subscription = None
    tenant = factory.LazyAttribute(lambda job: job.subscription.tenant if job.subscription
                                   else None)
    stamp = factory.Maybe(
        "subscription",
        yes_declaration=factory.LazyAttribute(lambda job: job.subscription.plan.cloud.stamp),
        no_declaration=factory.SubFactory(StampFactory))
    resource_type = factory.LazyAttribute(
        lambda job: job.resource._meta.label_lower if job.resource is not None else "")
    resource_id = factory.LazyAttribute(
        lambda job: str(job.resource.pk) if job.resource is not None else "")

    class Params:
        resource = None


class JobStepFactory(DjangoModelFactory):
    class Meta:
        model = JobStep

    job = factory.SubFactory(JobFactory)
    index = factory.Sequence(lambda n: n + 1)
    name = factory.LazyAttribute(lambda step: f"step {step.index}")
