"""Stamp drivers: one ``Driver`` interface, several implementations.

``get_driver(kind, name=..., endpoint=..., credentials=...)`` builds one from
a stamp's configuration.  Kinds: ``simulated`` (a stampsim over HTTP),
``memory`` (in process, for tests), ``libvirt`` (a libvirt host through
libvirt-python, an optional extra: ``pip install '.[libvirt]'``).
Nothing here imports Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import (
    ALL_CAPABILITIES,
    Capability,
    Capacity,
    CheckpointInfo,
    Conflict,
    ConflictCode,
    ContainerInfo,
    Driver,
    DriverError,
    DriverNotAvailable,
    FirewallRuleInfo,
    GatewayInfo,
    GuestFile,
    InvalidRequest,
    Inventory,
    NatRuleInfo,
    NetworkInfo,
    NotFound,
    OperationFailed,
    OperationTimeout,
    PowerState,
    ReplicationInfo,
    ReplicationRole,
    ReplicationState,
    StampHealth,
    StampUnreachable,
    Unauthorized,
    Unsupported,
    VmEvent,
    VmHistory,
    VmInfo,
    VmKind,
    VmUsage,
)

__all__ = [
    "ALL_CAPABILITIES",
    "DRIVER_KINDS",
    "Capability",
    "Capacity",
    "CheckpointInfo",
    "Conflict",
    "ConflictCode",
    "ContainerInfo",
    "Driver",
    "DriverError",
    "DriverNotAvailable",
    "FirewallRuleInfo",
    "GatewayInfo",
    "GuestFile",
    "InvalidRequest",
    "Inventory",
    "NatRuleInfo",
    "NetworkInfo",
    "NotFound",
    "OperationFailed",
    "OperationTimeout",
    "PowerState",
    "ReplicationInfo",
    "ReplicationRole",
    "ReplicationState",
    "StampHealth",
    "StampUnreachable",
    "Unauthorized",
    "Unsupported",
    "VmEvent",
    "VmHistory",
    "VmInfo",
    "VmKind",
    "VmUsage",
    "capabilities_of",
    "get_driver",
]

DRIVER_KINDS = ("simulated", "memory", "libvirt")
LIBVIRT_MISSING = (
    "the libvirt driver needs libvirt-python, which is not installed here: "
    "apt-get install libvirt-dev pkg-config, then pip install '.[libvirt]'"
)


# What each kind can do, known without building a driver (or having its binding installed):
# the portal checks it when it validates plans, add-ons and jobs.
_CAPABILITIES: dict[str, frozenset[Capability]] = {
    "simulated": ALL_CAPABILITIES,
    "memory": ALL_CAPABILITIES,
    "libvirt": frozenset(),  # = LibvirtDriver.capabilities (fabric/drivers/libvirt.py)
}


def capabilities_of(kind: str) -> frozenset[Capability]:
    """The capabilities of a driver kind (none for a kind this code does not know)."""
    return _CAPABILITIES.get(kind, frozenset())


def get_driver(
    kind: str,
    *,
    name: str,
    endpoint: str,
    credentials: Mapping[str, Any] | None = None,
    **options: Any,
) -> Driver:
    """Build the driver for a stamp; ``options`` (timeout, retries, backoff) pass through."""
    if kind == "simulated":
        from .simulated import SimulatedDriver

        return SimulatedDriver(name, endpoint, credentials, **options)
    if kind == "memory":
        from .memory import MemoryDriver

        return MemoryDriver(name, endpoint, credentials, **options)
    if kind == "libvirt":
        try:
            from .libvirt import LibvirtDriver
        except ImportError as exc:
            if exc.name != "libvirt":
                raise
            raise DriverNotAvailable(name, "driver.load", LIBVIRT_MISSING) from None
        return LibvirtDriver(name, endpoint, credentials, **options)
    raise DriverNotAvailable(
        name, "driver.load", f"unknown driver kind {kind!r} (known: {', '.join(DRIVER_KINDS)})"
    )
