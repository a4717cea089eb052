"""The size rules of a VM, in one place: the bounds a size must keep (the image's
minimum, the plan's maximum), the check of a requested size, the quota a size uses and
what a resize changes in it.

``provisioning.resources`` decides with these; the forms, the size checks the pages
draw and the quota preview show the same rules before anything is sent. The functions
are pure: templates and plans are read for their ``min_*`` and ``max_vm_*`` numbers
only, so the rules can be tested (and property-tested) without a database.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

__all__ = [
    "RESIZED",
    "Bound",
    "BoundCheck",
    "SizeFault",
    "VmSize",
    "check_size",
    "form_bounds",
    "growth",
    "resize_delta",
    "shrink",
    "size_bounds",
]

# The sizes of a VM, each with the template's minimum and the plan's maximum.
_LIMITS = {
    "vcpus": ("min_vcpus", "max_vm_vcpus"),
    "memory_mb": ("min_memory_mb", "max_vm_memory_mb"),
    "disk_gb": ("min_disk_gb", "max_vm_disk_gb"),
}
# A resize changes vCPUs and memory; the disk stays and so does the VM count.
RESIZED = ("vcpus", "memory_mb")


class SizeFault(enum.StrEnum):
    TOO_SMALL = "too-small"  # below the image's minimum
    TOO_LARGE = "too-large"  # above the plan's maximum per VM


@dataclass(frozen=True)
class Bound:
    """What one size of a VM may be: from ``least`` to ``most``, both included."""

    field: str
    least: int
    most: int

    def fault(self, value: int) -> SizeFault | None:
        if value < self.least:
            return SizeFault.TOO_SMALL
        if value > self.most:
            return SizeFault.TOO_LARGE
        return None


@dataclass(frozen=True)
class BoundCheck:
    """One requested size against its bound."""

    bound: Bound
    value: int

    @property
    def field(self) -> str:
        return self.bound.field

    @property
    def fault(self) -> SizeFault | None:
        return self.bound.fault(self.value)


def size_bounds(template, plan, *, disk: bool = True) -> list[Bound]:
    """The bounds of a VM of ``template`` in ``plan``: vCPUs, memory and (unless a
    resize, which keeps the disk) disk."""
    fields = _LIMITS if disk else RESIZED
    return [Bound(name, getattr(template, _LIMITS[name][0]), getattr(plan, _LIMITS[name][1]))
            for name in fields]


def form_bounds(templates: Iterable, plan, *, disk: bool = True) -> list[Bound]:
    """The bounds a form offers before an image is chosen: no image needs less than the
    smallest minimum of the plan's images (1 without images), the plan allows no more
    than its maximum. The chosen image's own minimum is checked by ``check_size``."""
    templates = list(templates)
    fields = _LIMITS if disk else RESIZED
    return [Bound(name, min((getattr(t, _LIMITS[name][0]) for t in templates), default=1),
                  getattr(plan, _LIMITS[name][1]))
            for name in fields]


def check_size(template, plan, *, vcpus: int, memory_mb: int,
               disk_gb: int | None = None) -> list[BoundCheck]:
    """Each requested size against its bound; ``disk_gb=None`` (a resize) leaves the
    disk out."""
    values = {"vcpus": vcpus, "memory_mb": memory_mb, "disk_gb": disk_gb}
    return [BoundCheck(bound, values[bound.field])
            for bound in size_bounds(template, plan, disk=disk_gb is not None)]


@dataclass(frozen=True)
class VmSize:
    """A VM's size, and the quota it uses."""

    vcpus: int
    memory_mb: int
    disk_gb: int

    @classmethod
    def of(cls, vm) -> VmSize:
        return cls(vm.vcpus, vm.memory_mb, vm.disk_gb)

    def usage(self) -> dict[str, int]:
        """In the quota's dimensions: a VM's disk counts as storage, and it is one VM."""
        return {"vcpus": self.vcpus, "memory_mb": self.memory_mb, "storage_gb": self.disk_gb,
                "vms": 1}

    def resized(self, *, vcpus: int, memory_mb: int) -> VmSize:
        return replace(self, vcpus=vcpus, memory_mb=memory_mb)


def resize_delta(old: VmSize, new: VmSize) -> dict[str, int]:
    """New usage minus old usage, in the dimensions a resize changes (negative where it
    shrinks). A resize keeps the disk: sizes with another disk are not a resize."""
    if old.disk_gb != new.disk_gb:
        raise ValueError(f"a resize keeps the disk ({old.disk_gb} GB, not {new.disk_gb} GB)")
    before, after = old.usage(), new.usage()
    return {dimension: after[dimension] - before[dimension] for dimension in RESIZED}


def growth(delta: Mapping[str, int]) -> dict[str, int]:
    """What a change takes from the quota: its increases (reserved up front)."""
    return {dimension: max(0, amount) for dimension, amount in delta.items()}


def shrink(delta: Mapping[str, int]) -> dict[str, int]:
    """What a change gives back to the quota: its decreases (released once done)."""
    return {dimension: max(0, -amount) for dimension, amount in delta.items()}
