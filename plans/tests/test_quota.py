"""The quota ledger and the cloud's capacity ledger on their own: reserve, release, limits.
(What concurrency does to them is ``tests/test_quota_races.py``, on PostgreSQL.)"""

import pytest

from base.errors import QuotaExceeded
from fabric.models import CloudCapacity
from fabric.tests.factories import CloudFactory
from plans import quota
from plans.models import SubscriptionAddOn
from plans.services import limits_of
from plans.tests.factories import AddOnFactory, PlanFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


def used(subscription) -> dict[str, int]:
    return {d: row["used"] for d, row in quota.summary(subscription).items()}


def test_a_reservation_over_the_quota_names_each_dimension_and_takes_nothing():
    # given a subscription with 6 of its 8 vCPUs and 1 of its 4 VMs in use
    subscription = SubscriptionFactory(plan=PlanFactory(quota_vcpus=8, quota_vms=4))
    quota.reserve(subscription, {"vcpus": 6, "vms": 1, "memory_mb": 512})
    # when more is asked than two dimensions have left
    with pytest.raises(QuotaExceeded) as refused:
        quota.reserve(subscription, {"vcpus": 4, "vms": 4, "memory_mb": 512})
    # then both are named with what was asked, used and allowed, and nothing was taken
    assert refused.value.errors == {"vcpus": {"requested": 4, "used": 6, "limit": 8},
                                    "vms": {"requested": 4, "used": 1, "limit": 4}}
    assert used(subscription) == {"vcpus": 6, "memory_mb": 512, "storage_gb": 0, "vms": 1,
                                  "networks": 0, "snapshots": 0}


def test_the_cloud_refuses_what_its_capacity_cannot_hold_even_within_quota():
    # given a cloud with room for one VM, and a plan that allows four
    plan = PlanFactory(cloud=CloudFactory(vms=1), quota_vms=4)
    first, second = SubscriptionFactory(plan=plan), SubscriptionFactory(plan=plan)
    quota.reserve(first, {"vms": 1}, cloud_id=plan.cloud_id)
    # when another subscription asks for a VM
    with pytest.raises(QuotaExceeded) as refused:
        quota.reserve(second, {"vms": 1}, cloud_id=plan.cloud_id)
    # then the provider's cloud is named, and the subscription's quota is untouched
    assert "provider's cloud" in refused.value.detail
    assert used(second)["vms"] == 0


def test_release_gives_back_to_both_ledgers():
    # given a VM's worth reserved in a subscription and its cloud
    subscription = SubscriptionFactory()
    cloud_id = subscription.plan.cloud_id
    vm = {"vcpus": 2, "memory_mb": 1024, "storage_gb": 20, "vms": 1}
    quota.reserve(subscription, vm, cloud_id=cloud_id)
    # when it is released
    quota.release(subscription, vm, cloud_id=cloud_id)
    # then nothing is in use in either
    assert set(used(subscription).values()) == {0}
    assert set(CloudCapacity.objects.filter(cloud_id=cloud_id)
               .values_list("used", flat=True)) == {0}


def test_limits_follow_the_attached_quota_addons_and_may_fall_below_use():
    # given a subscription of a 4-VM plan with 4 VMs, and a +2 VMs add-on attached
    addon = AddOnFactory(quota_vms=2)
    subscription = SubscriptionFactory(plan=PlanFactory(quota_vms=4, addons=[addon]))
    SubscriptionAddOn.objects.create(subscription=subscription, addon=addon)
    quota.set_limits(subscription, limits_of(subscription))
    quota.reserve(subscription, {"vms": 5})
    assert quota.summary(subscription)["vms"] == {"limit": 6, "used": 5, "burst": 0}
    # when the add-on is taken away
    subscription.addon_links.all().delete()
    quota.set_limits(subscription, limits_of(subscription))
    # then the limit is below what is used: allowed, it only blocks new reservations
    assert quota.summary(subscription)["vms"] == {"limit": 4, "used": 5, "burst": 0}
    with pytest.raises(QuotaExceeded):
        quota.reserve(subscription, {"vms": 1})
