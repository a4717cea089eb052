"""Clouds and their capacity ledger on their own: what ``save_cloud`` keeps in step."""

from decimal import Decimal

import pytest

from fabric import services
from fabric.models import CloudCapacity
from fabric.tests.factories import CloudFactory

pytestmark = pytest.mark.django_db


def ledger(cloud) -> dict[str, tuple[int, int]]:
    return {row.dimension: (row.limit, row.used)
            for row in CloudCapacity.objects.filter(cloud=cloud)}


def test_a_new_cloud_may_allocate_its_size_times_its_overcommit():
    # when a cloud of 8 vCPUs and 16 GB is carved with CPU overcommitted twice
    cloud = CloudFactory(vcpus=8, memory_mb=16384, storage_gb=100, vms=10,
                         overcommit_cpu=Decimal("2"), overcommit_memory=Decimal("1.5"))
    # then its ledger allows 16 vCPUs and 24 GB, and nothing is allocated
    assert ledger(cloud) == {"vcpus": (16, 0), "memory_mb": (24576, 0),
                             "storage_gb": (100, 0), "vms": (10, 0)}


def test_a_smaller_cloud_keeps_what_is_allocated_even_above_its_new_limit():
    # given a cloud with 12 of its 16 vCPUs allocated
    cloud = CloudFactory(vcpus=16, vms=10)
    CloudCapacity.objects.filter(cloud=cloud, dimension="vcpus").update(used=12)
    # when the provider shrinks it to 8 vCPUs
    services.save_cloud(cloud, fields={"vcpus": 8}, acting_user=None)
    # then the limit follows and the allocation stays: only new VMs are refused
    assert ledger(cloud)["vcpus"] == (8, 12)
    assert ledger(cloud)["vms"] == (10, 0)
