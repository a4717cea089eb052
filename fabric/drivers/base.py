"""The driver interface every stamp driver implements, its results and its errors.

Conventions every driver keeps:

* Every mutating method takes ``key`` (keyword-only, first): the idempotency
  key the runbook step chose.  Calling again with the same key never changes
  the fabric twice and returns the first call's outcome.  A key belongs to one
  call: reusing it for another call raises ``Conflict`` (``idempotency-mismatch``).
* A mutating method blocks until the fabric's operation has finished, or the
  driver's timeout has passed (``OperationTimeout``; calling again with the
  same key later picks the same operation up).
* Deleting something already gone succeeds (undo steps are idempotent).
* Every error is a ``DriverError`` whose message names the stamp and the
  operation; ``transient`` says whether trying again later may help.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = [
    "ALL_CAPABILITIES",
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
    "VmUsage",
    "VmInfo",
    "VmKind",
]


# -- choices -------------------------------------------------------------------
class PowerState(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class VmKind(enum.StrEnum):
    NORMAL = "normal"
    REPLICA = "replica"  # a powered-off copy that only a failover can turn into a VM


class ReplicationRole(enum.StrEnum):
    SOURCE = "source"  # this stamp holds the primary and pushes syncs
    TARGET = "target"  # this stamp holds the replica (or the failed-over VM)


class ReplicationState(enum.StrEnum):
    ENABLED = "enabled"
    FAILED_OVER = "failed-over"


class Capability(enum.StrEnum):
    """What a stamp can do beyond VMs, networks and checkpoints, which every stamp does.

    A driver declares its set in ``capabilities``; the portal checks it before it
    offers or starts work that needs one (a call it lacks raises ``Unsupported``)."""

    GATEWAYS = "gateways"  # an edge gateway holding an external address
    FIREWALL = "firewall"  # firewall rules on a tenant's edge
    NAT = "nat"  # source NAT rules from a network to an external address
    REPLICATION = "replication"  # replicating VMs to another stamp (the DR add-on)
    GUEST_FILES = "guest-files"  # reading and restoring files inside a guest
    USAGE_HISTORY = "usage-history"  # a VM's past usage, for metering's backfill


ALL_CAPABILITIES = frozenset(Capability)


class ConflictCode(enum.StrEnum):
    """``Conflict.code`` values."""

    CAPACITY = "capacity"
    STATE = "state"
    IN_USE = "in-use"
    EXISTS = "exists"
    CIDR_OVERLAP = "cidr-overlap"
    ADDRESS_IN_USE = "address-in-use"
    IDEMPOTENCY_MISMATCH = "idempotency-mismatch"
    REPLICA_MISSING = "replica-missing"


# -- errors --------------------------------------------------------------------
class DriverError(Exception):
    """Base of every driver error: ``stamp 'name' operation: message``."""

    transient: bool = False

    def __init__(
        self, stamp: str, operation: str, message: str, *, code: str | None = None
    ) -> None:
        super().__init__(f"stamp {stamp!r} {operation}: {message}")
        self.stamp = stamp
        self.operation = operation
        self.message = message
        self.code = code


class StampUnreachable(DriverError):
    """No usable answer (connection refused, timeouts, 5xx) after the retries."""

    transient = True


class OperationTimeout(DriverError):
    """The fabric accepted the call but did not finish it within the timeout."""

    transient = True


class OperationFailed(DriverError):
    """The fabric tried and failed; trying the same key again gives the same result."""


class InvalidRequest(OperationFailed):
    """The fabric refused the input (a bug in the caller, or a value out of range)."""


class Unauthorized(DriverError):
    """The stamp refused the credentials."""


class Conflict(DriverError):
    """The fabric refused because of its state; ``code`` is a ``ConflictCode`` value."""

    def __init__(self, stamp: str, operation: str, message: str, *, code: str) -> None:
        super().__init__(stamp, operation, message, code=code)


class NotFound(DriverError):
    """The object does not exist on the stamp."""


class Unsupported(OperationFailed):
    """The stamp cannot do this at all (a capability it lacks): no retry will help."""


class DriverNotAvailable(DriverError):
    """No such driver, or it cannot be used here."""


# -- results -------------------------------------------------------------------
@dataclass(frozen=True)
class Capacity:
    vcpus: int
    memory_mb: int
    storage_gb: int
    vms: int


@dataclass(frozen=True)
class StampHealth:
    name: str
    status: str
    capacity: Capacity
    allocated: Capacity

    @property
    def free(self) -> Capacity:
        return Capacity(
            vcpus=self.capacity.vcpus - self.allocated.vcpus,
            memory_mb=self.capacity.memory_mb - self.allocated.memory_mb,
            storage_gb=self.capacity.storage_gb - self.allocated.storage_gb,
            vms=self.capacity.vms - self.allocated.vms,
        )


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class GatewayInfo:
    id: str
    container_id: str
    name: str
    external_ip: str


@dataclass(frozen=True)
class NetworkInfo:
    id: str
    container_id: str
    name: str
    cidr: str
    gateway_address: str
    kind: str  # "routed" | "isolated"


@dataclass(frozen=True)
class NatRuleInfo:
    id: str
    container_id: str
    internal_cidr: str
    external_ip: str


@dataclass(frozen=True)
class FirewallRuleInfo:
    id: str
    container_id: str
    direction: str  # "inbound" | "outbound"
    action: str  # "allow" | "deny"
    source: str
    destination: str
    ports: str


@dataclass(frozen=True)
class VmInfo:
    id: str
    container_id: str
    name: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    image: str
    network_id: str | None
    ip_address: str | None
    power_state: PowerState
    kind: VmKind
    data_version: int


@dataclass(frozen=True)
class CheckpointInfo:
    id: str
    vm_id: str
    name: str
    data_version: int
    created_at: datetime


@dataclass(frozen=True)
class GuestFile:
    """A file inside a VM's guest (``content`` only when one file was read)."""

    path: str
    size: int
    content: str | None = None


@dataclass(frozen=True)
class ReplicationInfo:
    id: str
    vm_id: str  # the VM on the stamp that answered
    role: ReplicationRole
    state: ReplicationState
    partner_stamp: str  # the other stamp's name
    partner_vm_id: str  # the replica (role source) or the primary (role target)
    partner_endpoint: str | None  # known on the source side only
    partner_container_id: str | None  # known on the source side only
    sequence: int  # number of syncs carried, enabling counts as the first
    last_sync_at: datetime | None
    data_version: int  # the data version the last sync carried


@dataclass(frozen=True)
class Inventory:
    name: str
    containers: tuple[ContainerInfo, ...]
    gateways: tuple[GatewayInfo, ...]
    networks: tuple[NetworkInfo, ...]
    nat_rules: tuple[NatRuleInfo, ...]
    firewall_rules: tuple[FirewallRuleInfo, ...]
    vms: tuple[VmInfo, ...]
    checkpoints: tuple[CheckpointInfo, ...]
    replications: tuple[ReplicationInfo, ...]


class VmUsage(NamedTuple):
    """What is metered of a VM now (a tuple: a stamp may hold a hundred thousand)."""

    id: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    checkpoints: int
    protected: bool
    running: bool = True  # a stamp that does not say: metered as running


@dataclass(frozen=True)
class VmEvent:
    """What was metered of a VM from ``at`` on (``event``: created, started, stopped,
    resized, deleted, changed, observed)."""

    at: datetime
    event: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    power_state: PowerState
    kind: VmKind
    checkpoints: int
    protected: bool


@dataclass(frozen=True)
class VmHistory:
    """A VM's events in a window, from the last one at or before the window's start."""

    vm_id: str
    container_id: str
    events: tuple[VmEvent, ...]

    def at(self, moment: datetime) -> VmEvent | None:
        """The VM as it was at ``moment`` (None: not created yet, or deleted)."""
        state = None
        for event in self.events:
            if event.at > moment:
                break
            state = event
        return None if state is None or state.event == "deleted" else state


# -- the interface -------------------------------------------------------------
@runtime_checkable
class Driver(Protocol):
    """What the portal can ask of a stamp.  See the module docstring for the rules."""

    name: str
    endpoint: str
    capabilities: frozenset[Capability]

    # reads
    def health(self) -> StampHealth: ...
    def inventory(self) -> Inventory: ...
    def external_addresses(self) -> set[str]: ...
    def get_vm(self, vm_id: str) -> VmInfo: ...
    def list_checkpoints(self, vm_id: str) -> list[CheckpointInfo]: ...
    def replication_status(self, vm_id: str) -> ReplicationInfo | None: ...
    def usage(self) -> list[VmUsage]:
        """What is metered of every VM now (replicas left out)."""
        ...
    def usage_history(self, since: datetime, until: datetime) -> list[VmHistory]:
        """Every VM that existed in ``[since, until)`` with its events (metering's backfill
        after the stamp did not answer)."""
        ...

    # tenant containers and their networking
    def create_container(self, *, key: str, name: str) -> ContainerInfo: ...
    def delete_container(self, *, key: str, container_id: str, force: bool = False) -> None: ...
    def create_gateway(
        self, *, key: str, container_id: str, external_ip: str, name: str = "edge"
    ) -> GatewayInfo: ...
    def delete_gateway(self, *, key: str, gateway_id: str) -> None: ...
    def create_network(
        self, *, key: str, container_id: str, name: str, cidr: str, kind: str = "routed"
    ) -> NetworkInfo: ...
    def delete_network(self, *, key: str, network_id: str) -> None: ...
    def add_nat_rule(
        self, *, key: str, container_id: str, internal_cidr: str, external_ip: str
    ) -> str: ...
    def delete_nat_rule(self, *, key: str, rule_id: str) -> None: ...
    def add_firewall_rule(
        self,
        *,
        key: str,
        container_id: str,
        direction: str,
        action: str,
        source: str,
        destination: str,
        ports: str = "any",
    ) -> str: ...
    def delete_firewall_rule(self, *, key: str, rule_id: str) -> None: ...

    # VMs
    def create_vm(
        self,
        *,
        key: str,
        container_id: str,
        name: str,
        vcpus: int,
        memory_mb: int,
        disk_gb: int,
        image: str,
        network_id: str | None,
        ip_address: str | None = None,
        power_on: bool = True,
    ) -> VmInfo: ...
    def start_vm(self, *, key: str, vm_id: str) -> VmInfo: ...
    def stop_vm(self, *, key: str, vm_id: str) -> VmInfo: ...
    def restart_vm(self, *, key: str, vm_id: str) -> VmInfo: ...
    def resize_vm(self, *, key: str, vm_id: str, vcpus: int, memory_mb: int) -> VmInfo: ...
    def delete_vm(self, *, key: str, vm_id: str) -> None: ...

    # checkpoints
    def create_checkpoint(self, *, key: str, vm_id: str, name: str) -> CheckpointInfo: ...
    def restore_checkpoint(self, *, key: str, vm_id: str, checkpoint_id: str) -> VmInfo: ...
    def delete_checkpoint(self, *, key: str, vm_id: str, checkpoint_id: str) -> None: ...

    # guest files (what a self-service file restore reads and puts back)
    def list_files(self, vm_id: str, checkpoint_id: str | None = None) -> list[GuestFile]: ...
    def read_file(self, vm_id: str, path: str) -> GuestFile: ...
    def write_file(self, *, key: str, vm_id: str, path: str, content: str) -> GuestFile: ...
    def restore_file(
        self, *, key: str, vm_id: str, checkpoint_id: str, path: str
    ) -> GuestFile: ...

    # replication
    def enable_replication(
        self,
        *,
        key: str,
        vm_id: str,
        target_endpoint: str,
        target_container_id: str,
        target_token: str | None = None,
    ) -> ReplicationInfo: ...
    def sync_replication(self, *, key: str, vm_id: str) -> ReplicationInfo: ...
    def failover_replication(
        self, *, key: str, vm_id: str, network_id: str | None = None, ip_address: str | None = None
    ) -> VmInfo: ...
    def reverse_replication(
        self,
        *,
        key: str,
        vm_id: str,
        target_endpoint: str,
        target_container_id: str,
        target_token: str | None = None,
    ) -> ReplicationInfo: ...
    def disable_replication(self, *, key: str, vm_id: str, keep_replica: bool = False) -> None: ...

    def close(self) -> None: ...
