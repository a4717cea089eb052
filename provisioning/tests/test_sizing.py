"""The size rules of a VM (``provisioning.sizing``): pure functions, tested without a
database. The service, the forms, the size checks and the quota preview all call them."""

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioning.sizing import (
    RESIZED,
    Bound,
    SizeFault,
    VmSize,
    check_size,
    form_bounds,
    growth,
    resize_delta,
    shrink,
    size_bounds,
)

DEBIAN = SimpleNamespace(name="debian-12", min_vcpus=1, min_memory_mb=512, min_disk_gb=10)
WINDOWS = SimpleNamespace(name="win-2022", min_vcpus=2, min_memory_mb=4096, min_disk_gb=60)
PLAN = SimpleNamespace(max_vm_vcpus=16, max_vm_memory_mb=65536, max_vm_disk_gb=1024)

sizes = st.builds(VmSize, vcpus=st.integers(1, 1024), memory_mb=st.integers(1, 2**20),
                  disk_gb=st.integers(1, 10_000))


def test_the_bounds_are_the_images_minimum_and_the_plans_maximum():
    assert size_bounds(WINDOWS, PLAN) == [Bound("vcpus", 2, 16), Bound("memory_mb", 4096, 65536),
                                          Bound("disk_gb", 60, 1024)]
    # a resize keeps the disk: no disk bound
    assert [b.field for b in size_bounds(WINDOWS, PLAN, disk=False)] == ["vcpus", "memory_mb"]


def test_a_form_offers_the_smallest_minimum_of_the_plans_images():
    assert form_bounds([WINDOWS, DEBIAN], PLAN) == [
        Bound("vcpus", 1, 16), Bound("memory_mb", 512, 65536), Bound("disk_gb", 10, 1024)]
    # without images, no minimum but the fields' own
    assert [b.least for b in form_bounds([], PLAN)] == [1, 1, 1]


@pytest.mark.parametrize(("value", "fault"), [
    (1, SizeFault.TOO_SMALL), (2, None), (16, None), (17, SizeFault.TOO_LARGE)])
def test_a_bound_includes_both_ends(value, fault):
    assert Bound("vcpus", 2, 16).fault(value) is fault


def test_a_requested_size_is_checked_against_each_bound():
    # when a Windows VM asks for too little memory and too many vCPUs
    checks = check_size(WINDOWS, PLAN, vcpus=32, memory_mb=1024, disk_gb=60)
    # then each size says what is wrong with it
    assert {c.field: c.fault for c in checks} == {
        "vcpus": SizeFault.TOO_LARGE, "memory_mb": SizeFault.TOO_SMALL, "disk_gb": None}
    # and a resize leaves the disk out
    assert [c.field for c in check_size(WINDOWS, PLAN, vcpus=2, memory_mb=4096)] == [
        "vcpus", "memory_mb"]


def test_a_vm_uses_its_sizes_its_disk_as_storage_and_one_vm():
    assert VmSize(2, 2048, 20).usage() == {"vcpus": 2, "memory_mb": 2048, "storage_gb": 20,
                                           "vms": 1}


def test_a_resize_reserves_its_growth_and_gives_back_its_shrink():
    # given a VM going from 2 vCPUs and 4 GB to 4 vCPUs and 2 GB
    old = VmSize(2, 4096, 20)
    delta = resize_delta(old, old.resized(vcpus=4, memory_mb=2048))
    # then
    assert delta == {"vcpus": 2, "memory_mb": -2048}
    assert growth(delta) == {"vcpus": 2, "memory_mb": 0}
    assert shrink(delta) == {"vcpus": 0, "memory_mb": 2048}


def test_a_change_of_disk_is_not_a_resize():
    with pytest.raises(ValueError, match="keeps the disk"):
        resize_delta(VmSize(2, 4096, 20), VmSize(2, 4096, 40))


@given(old=sizes, vcpus=st.integers(1, 1024), memory_mb=st.integers(1, 2**20))
def test_a_resize_and_its_reverse_sum_to_zero(old, vcpus, memory_mb):
    new = old.resized(vcpus=vcpus, memory_mb=memory_mb)
    there, back = resize_delta(old, new), resize_delta(new, old)
    assert {d: there[d] + back[d] for d in RESIZED} == dict.fromkeys(RESIZED, 0)


@given(old=sizes, vcpus=st.integers(1, 1024), memory_mb=st.integers(1, 2**20))
def test_old_usage_plus_the_delta_is_the_new_usage(old, vcpus, memory_mb):
    new = old.resized(vcpus=vcpus, memory_mb=memory_mb)
    delta = resize_delta(old, new)
    after = {d: old.usage()[d] + delta.get(d, 0) for d in old.usage()}
    assert after == new.usage()
    # what is reserved up front, less what comes back, is the delta; neither is negative
    assert {d: growth(delta)[d] - shrink(delta)[d] for d in delta} == delta
    assert min(growth(delta).values()) >= 0 and min(shrink(delta).values()) >= 0
