"""Tenant resources on their own: what creating and giving back a VM holds in the ledgers.
The job that does the fabric's part is recorded, not run."""

import dataclasses

import pytest

from base.errors import Invalid
from fabric.models import CloudCapacity
from fabric.tests.factories import CloudFactory, TemplateFactory
from plans import quota
from plans.tests.factories import PlanFactory
from provisioning import holdings, resources
from provisioning.models import JobState, NetworkAddress, VirtualMachine
from provisioning.tests.factories import CommissionedSubscriptionFactory, NetworkFactory

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
    assert quota.summary(subscription)["vcpus"] == {"limit": 8, "used": 2}
    assert cloud_used(subscription, "vcpus") == 2
    assert vm.ip_address == "10.0.0.2"  # .1 is the gateway
    assert (job.runbook, job.state, job.resource_id) == ("vm.create", JobState.QUEUED,
                                                         str(vm.pk))
    # when what it holds is given back, twice (a retried job)
    holdings.give_back(vm)
    holdings.give_back(vm)
    # then it is given back once
    assert quota.summary(subscription)["vcpus"] == {"limit": 8, "used": 0}
    assert cloud_used(subscription, "vcpus") == 0
    assert not NetworkAddress.objects.filter(vm=vm).exists()


def test_a_vm_on_a_network_still_being_made_is_refused_and_holds_nothing(subscription):
    # given a network whose job has not run yet
    network = NetworkFactory(subscription=subscription, cidr="10.5.0.0/24")
    # when a VM is asked for on it
    with pytest.raises(Invalid) as refused:
        resources.create_vm(subscription, spec(subscription, network), acting_user=None)
    # then the network is named, and nothing was made or reserved
    assert refused.value.errors == {"network": ["The network is provisioning."]}
    assert not VirtualMachine.objects.filter(subscription=subscription).exists()
    assert quota.summary(subscription)["vms"]["used"] == 0


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
