"""The rules of every operation that only touches this stamp.

A handler is ``handler(ctx, state, params, apply) -> result``.  It first checks
everything (raising ``ApiError``: 400 bad input, 404 unknown object, 409
conflict) and only then, if ``apply`` is true, changes the state.  The fabric
calls it twice: with ``apply=False`` when the request arrives (a refusal is
answered at once and nothing is recorded), and with ``apply=True`` when the
operation runs (under the fabric's lock, so the checks and the change are one
atomic step and a refusal at that point changes nothing either).

Choices made here (documented in ``server.py`` too):

* VMs are created running unless ``power_on`` is false.
* Resize needs the VM stopped (``409 state`` otherwise): no hot resize.
* Checkpoint restore needs the VM stopped (``409 state`` otherwise).
* A VM that replicates to another stamp cannot be deleted before its
  replication is disabled (``409 state``); a replica can be deleted.
* Replicas cannot be started, stopped, resized, written or checkpointed
  (``409 state``) until they are failed over.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import validation as v
from .errors import ErrorCode, bad_request, conflict, not_found
from .state import (
    CAPACITY_KEYS,
    PowerState,
    ReplicationRole,
    State,
    VmKind,
    new_id,
    public,
)

__all__ = [
    "HANDLERS",
    "Context",
    "Handler",
    "OpKind",
    "Params",
    "check_capacity",
    "handles",
    "require_normal_vm",
    "require_power",
    "require_vm",
    "vm_address",
]


class OpKind(enum.StrEnum):
    """Every kind of operation (also the names fault injection uses)."""

    CONTAINER_CREATE = "container.create"
    CONTAINER_DELETE = "container.delete"
    GATEWAY_CREATE = "gateway.create"
    GATEWAY_DELETE = "gateway.delete"
    NETWORK_CREATE = "network.create"
    NETWORK_DELETE = "network.delete"
    NAT_CREATE = "nat.create"
    NAT_DELETE = "nat.delete"
    FIREWALL_CREATE = "firewall.create"
    FIREWALL_DELETE = "firewall.delete"
    VM_CREATE = "vm.create"
    VM_START = "vm.start"
    VM_STOP = "vm.stop"
    VM_RESTART = "vm.restart"
    VM_RESIZE = "vm.resize"
    VM_DELETE = "vm.delete"
    VM_WRITE = "vm.write"
    CHECKPOINT_CREATE = "checkpoint.create"
    CHECKPOINT_RESTORE = "checkpoint.restore"
    CHECKPOINT_DELETE = "checkpoint.delete"
    FILE_WRITE = "file.write"
    FILE_RESTORE = "file.restore"
    REPLICATION_ENABLE = "replication.enable"
    REPLICATION_SYNC = "replication.sync"
    REPLICATION_FAILOVER = "replication.failover"
    REPLICATION_REVERSE = "replication.reverse"
    REPLICATION_DISABLE = "replication.disable"
    # Called by another stamp (the source of a replication) on this one.
    REPLICA_CREATE = "replica.create"
    REPLICA_SYNC = "replica.sync"
    REPLICA_DELETE = "replica.delete"


@dataclass(frozen=True)
class Context:
    """What a handler may know about the stamp besides its state."""

    name: str
    capacity: dict[str, int]
    now: Callable[[], str]


Params = dict[str, Any]
Handler = Callable[[Context, State, Params, bool], Any]
HANDLERS: dict[OpKind, Handler] = {}


def handles(kind: OpKind) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn

    return register


# -- shared checks -----------------------------------------------------------
def check_capacity(ctx: Context, state: State, need: dict[str, int]) -> None:
    allocated = state.allocated()
    short = []
    for key in CAPACITY_KEYS:
        want = need.get(key, 0)
        if want > 0 and allocated[key] + want > ctx.capacity[key]:
            free = max(ctx.capacity[key] - allocated[key], 0)
            short.append(f"{key}: {want} requested, {free} of {ctx.capacity[key]} free")
    if short:
        raise conflict(
            ErrorCode.CAPACITY, f"stamp {ctx.name!r} refuses the allocation: " + "; ".join(short)
        )


def require_vm(state: State, params: Params) -> dict[str, Any]:
    return state.require("vms", v.text(params, "vm_id"), "VM")


def require_normal_vm(state: State, params: Params, action: str) -> dict[str, Any]:
    vm = require_vm(state, params)
    if vm["kind"] == VmKind.REPLICA:
        raise conflict(
            ErrorCode.STATE, f"VM {vm['id']!r} is a replica: fail it over before you {action} it"
        )
    return vm


def require_power(vm: dict[str, Any], wanted: PowerState, action: str) -> None:
    if vm["power_state"] != wanted:
        raise conflict(
            ErrorCode.STATE,
            f"cannot {action} VM {vm['id']!r}: it is {vm['power_state']}, not {wanted}",
        )


def _address_holder(state: State, ip: str) -> dict[str, Any] | None:
    return next((holder for addr, holder in state.external_address_holders() if addr == ip), None)


# -- containers --------------------------------------------------------------
@handles(OpKind.CONTAINER_CREATE)
def container_create(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    name = v.text(p, "name")
    if not apply:
        return None
    container = {"id": new_id("ctr"), "name": name, "created_at": ctx.now()}
    state.containers[container["id"]] = container
    return public(container)


@handles(OpKind.CONTAINER_DELETE)
def container_delete(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    container = state.require("containers", v.text(p, "container_id"), "container")
    force = v.boolean(p, "force")
    vms, networks = (
        state.in_container("vms", container["id"]),
        state.in_container("networks", container["id"]),
    )
    if (vms or networks) and not force:
        raise conflict(
            ErrorCode.IN_USE,
            f"container {container['id']!r} still holds {len(vms)} VM(s) and"
            f" {len(networks)} network(s); delete them first or pass force=true",
        )
    if not apply:
        return None
    state.remove_container(container["id"])
    return {"id": container["id"], "deleted": True}


# -- gateways, networks, NAT and firewall rules ------------------------------
@handles(OpKind.GATEWAY_CREATE)
def gateway_create(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    container = state.require("containers", v.text(p, "container_id"), "container")
    external_ip = str(v.address(p, "external_ip"))
    name = v.optional_text(p, "name", default="edge")
    existing = state.in_container("gateways", container["id"])
    if existing:
        raise conflict(
            ErrorCode.EXISTS,
            f"container {container['id']!r} already has gateway {existing[0]['id']!r}",
        )
    holder = _address_holder(state, external_ip)
    if holder is not None:
        raise conflict(
            ErrorCode.ADDRESS_IN_USE, f"external address {external_ip} is held by {holder['id']!r}"
        )
    if not apply:
        return None
    gateway = {
        "id": new_id("gw"),
        "container_id": container["id"],
        "name": name,
        "external_ip": external_ip,
    }
    state.gateways[gateway["id"]] = gateway
    return public(gateway)


@handles(OpKind.GATEWAY_DELETE)
def gateway_delete(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    gateway = state.require("gateways", v.text(p, "gateway_id"), "gateway")
    if not apply:
        return None
    del state.gateways[gateway["id"]]
    return {"id": gateway["id"], "deleted": True}


@handles(OpKind.NETWORK_CREATE)
def network_create(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    container = state.require("containers", v.text(p, "container_id"), "container")
    name = v.text(p, "name")
    cidr = v.network(p, "cidr")
    kind = v.choice(p, "kind", ("routed", "isolated"), default="routed")
    if cidr.num_addresses < 4:
        raise bad_request(
            f"cidr {cidr} is too small: a network needs a gateway and at least one host"
        )
    for other in state.in_container("networks", container["id"]):
        if cidr.overlaps(ipaddress.ip_network(other["cidr"])):
            raise conflict(
                ErrorCode.CIDR_OVERLAP,
                f"{cidr} overlaps network {other['id']!r} ({other['cidr']}) in the container",
            )
    if not apply:
        return None
    network = {
        "id": new_id("net"),
        "container_id": container["id"],
        "name": name,
        "cidr": str(cidr),
        "gateway_address": str(next(cidr.hosts())),
        "kind": kind,
    }
    state.networks[network["id"]] = network
    return public(network)


@handles(OpKind.NETWORK_DELETE)
def network_delete(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    network = state.require("networks", v.text(p, "network_id"), "network")
    attached = state.vms_on_network(network["id"])
    if attached:
        raise conflict(
            ErrorCode.IN_USE, f"network {network['id']!r} still has {len(attached)} VM(s) attached"
        )
    if not apply:
        return None
    del state.networks[network["id"]]
    return {"id": network["id"], "deleted": True}


@handles(OpKind.NAT_CREATE)
def nat_create(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    container = state.require("containers", v.text(p, "container_id"), "container")
    internal = v.network(p, "internal_cidr")
    external_ip = str(v.address(p, "external_ip"))
    holder = _address_holder(state, external_ip)
    # A container may source-NAT through its own gateway's address; any other
    # holder (another rule, another container's gateway) keeps it.
    if holder is not None and not (
        holder["id"].startswith("gw-") and holder["container_id"] == container["id"]
    ):
        raise conflict(
            ErrorCode.ADDRESS_IN_USE, f"external address {external_ip} is held by {holder['id']!r}"
        )
    if not apply:
        return None
    rule = {
        "id": new_id("nat"),
        "container_id": container["id"],
        "kind": "snat",
        "internal_cidr": str(internal),
        "external_ip": external_ip,
    }
    state.nat_rules[rule["id"]] = rule
    return public(rule)


@handles(OpKind.NAT_DELETE)
def nat_delete(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    rule = state.require("nat_rules", v.text(p, "rule_id"), "NAT rule")
    if not apply:
        return None
    del state.nat_rules[rule["id"]]
    return {"id": rule["id"], "deleted": True}


@handles(OpKind.FIREWALL_CREATE)
def firewall_create(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    container = state.require("containers", v.text(p, "container_id"), "container")
    rule = {
        "id": new_id("fw"),
        "container_id": container["id"],
        "direction": v.choice(p, "direction", ("inbound", "outbound")),
        "action": v.choice(p, "action", ("allow", "deny")),
        "source": v.traffic_endpoint(p, "source"),
        "destination": v.traffic_endpoint(p, "destination"),
        "ports": v.ports(p, "ports"),
    }
    if not apply:
        return None
    state.firewall_rules[rule["id"]] = rule
    return public(rule)


@handles(OpKind.FIREWALL_DELETE)
def firewall_delete(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    rule = state.require("firewall_rules", v.text(p, "rule_id"), "firewall rule")
    if not apply:
        return None
    del state.firewall_rules[rule["id"]]
    return {"id": rule["id"], "deleted": True}


# -- VMs -----------------------------------------------------------------------
def vm_address(state: State, network: dict[str, Any], requested: Any) -> str:
    cidr = ipaddress.ip_network(network["cidr"])
    taken = {vm["ip_address"] for vm in state.vms_on_network(network["id"])}
    reserved = {network["gateway_address"], str(cidr.network_address), str(cidr.broadcast_address)}
    if requested is not None:
        address = str(v.address({"ip_address": requested}, "ip_address"))
        if ipaddress.ip_address(address) not in cidr or address in reserved:
            raise bad_request(f"ip_address {address} is not a usable host address of {cidr}")
        if address in taken:
            raise conflict(
                ErrorCode.ADDRESS_IN_USE, f"{address} is already used on network {network['id']!r}"
            )
        return address
    for host in map(str, cidr.hosts()):
        if host not in taken and host not in reserved:
            return host
    raise conflict(ErrorCode.ADDRESS_IN_USE, f"network {network['id']!r} has no free address left")


@handles(OpKind.VM_CREATE)
def vm_create(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    container = state.require("containers", v.text(p, "container_id"), "container")
    spec = {
        "name": v.text(p, "name"),
        "vcpus": v.integer(p, "vcpus", maximum=1024),
        "memory_mb": v.integer(p, "memory_mb", minimum=64),
        "disk_gb": v.integer(p, "disk_gb"),
        "image": v.text(p, "image"),
    }
    power_on = v.boolean(p, "power_on", default=True)
    network_id, ip_address = v.optional_text(p, "network_id"), None
    if network_id is not None:
        network = state.require("networks", network_id, "network")
        if network["container_id"] != container["id"]:
            raise bad_request(f"network {network_id!r} belongs to another container")
        ip_address = vm_address(state, network, p.get("ip_address"))
    elif p.get("ip_address") is not None:
        raise bad_request("ip_address needs a network_id")
    check_capacity(
        ctx,
        state,
        {
            "vcpus": spec["vcpus"],
            "memory_mb": spec["memory_mb"],
            "storage_gb": spec["disk_gb"],
            "vms": 1,
        },
    )
    if not apply:
        return None
    vm = {
        "id": new_id("vm"),
        "container_id": container["id"],
        **spec,
        "network_id": network_id,
        "ip_address": ip_address,
        "power_state": PowerState.RUNNING if power_on else PowerState.STOPPED,
        "kind": VmKind.NORMAL,
        "data_version": 0,
        "boot_count": 1 if power_on else 0,
        "created_at": ctx.now(),
    }
    state.vms[vm["id"]] = vm
    return public(vm)


@handles(OpKind.VM_START)
def vm_start(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    vm = require_normal_vm(state, p, "start")
    require_power(vm, PowerState.STOPPED, "start")
    if not apply:
        return None
    vm["power_state"] = PowerState.RUNNING
    vm["boot_count"] += 1
    return public(vm)


@handles(OpKind.VM_STOP)
def vm_stop(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    vm = require_normal_vm(state, p, "stop")
    require_power(vm, PowerState.RUNNING, "stop")
    if not apply:
        return None
    vm["power_state"] = PowerState.STOPPED
    return public(vm)


@handles(OpKind.VM_RESTART)
def vm_restart(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    vm = require_normal_vm(state, p, "restart")
    require_power(vm, PowerState.RUNNING, "restart")
    if not apply:
        return None
    vm["boot_count"] += 1
    return public(vm)


@handles(OpKind.VM_RESIZE)
def vm_resize(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    vm = require_normal_vm(state, p, "resize")
    vcpus = v.integer(p, "vcpus", maximum=1024)
    memory_mb = v.integer(p, "memory_mb", minimum=64)
    require_power(vm, PowerState.STOPPED, "resize")
    check_capacity(
        ctx, state, {"vcpus": vcpus - vm["vcpus"], "memory_mb": memory_mb - vm["memory_mb"]}
    )
    if not apply:
        return None
    vm["vcpus"], vm["memory_mb"] = vcpus, memory_mb
    return public(vm)


@handles(OpKind.VM_DELETE)
def vm_delete(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    vm = require_vm(state, p)
    replication = state.replications.get(vm["id"])
    if replication is not None and replication["role"] == ReplicationRole.SOURCE:
        raise conflict(
            ErrorCode.STATE,
            f"VM {vm['id']!r} replicates to another stamp: disable replication first",
        )
    if not apply:
        return None
    state.remove_vm(vm["id"])
    return {"id": vm["id"], "deleted": True}


@handles(OpKind.VM_WRITE)
def vm_write(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    """Test hook: data written inside the guest grows ``data_version``."""
    vm = require_normal_vm(state, p, "write to")
    amount = v.integer(p, "amount", default=1)
    if not apply:
        return None
    vm["data_version"] += amount
    return public(vm)


# -- checkpoints ---------------------------------------------------------------
def _require_checkpoint(state: State, vm: dict[str, Any], p: Params) -> dict[str, Any]:
    checkpoint_id = v.text(p, "checkpoint_id")
    checkpoint = state.checkpoints.get(checkpoint_id)
    if checkpoint is None or checkpoint["vm_id"] != vm["id"]:
        raise not_found("checkpoint", checkpoint_id)
    return checkpoint


@handles(OpKind.CHECKPOINT_CREATE)
def checkpoint_create(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    vm = require_normal_vm(state, p, "checkpoint")
    name = v.text(p, "name")
    if not apply:
        return None
    checkpoint = {
        "id": new_id("cp"),
        "vm_id": vm["id"],
        "name": name,
        "data_version": vm["data_version"],
        "created_at": ctx.now(),
    }
    state.checkpoints[checkpoint["id"]] = checkpoint
    return public(checkpoint)


@handles(OpKind.CHECKPOINT_RESTORE)
def checkpoint_restore(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    vm = require_normal_vm(state, p, "restore")
    checkpoint = _require_checkpoint(state, vm, p)
    require_power(vm, PowerState.STOPPED, "restore a checkpoint of")
    if not apply:
        return None
    vm["data_version"] = checkpoint["data_version"]
    return public(vm)


@handles(OpKind.CHECKPOINT_DELETE)
def checkpoint_delete(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    vm = require_vm(state, p)
    checkpoint = _require_checkpoint(state, vm, p)
    if not apply:
        return None
    del state.checkpoints[checkpoint["id"]]
    return {"id": checkpoint["id"], "deleted": True}


# -- guest files -----------------------------------------------------------------
# A VM keeps a small file tree, versioned with its ``data_version``: every write makes a
# new version, so a checkpoint (which records the version) captures the tree as it was,
# and one file can be restored from it. The versions are private (``files``): never
# shown in a VM's answer. A version is never reused: a write after a whole-VM restore
# takes the next free one, so older checkpoints keep their trees.
MAX_FILE_BYTES = 64 * 1024
MAX_PATH = 1024


def tree_at(vm: dict[str, Any], version: int) -> dict[str, str]:
    """The VM's file tree at ``version`` (the last write at or before it)."""
    versions = vm.get("files", {})
    known = [int(k) for k in versions if int(k) <= version]
    return dict(versions[str(max(known))]) if known else {}


def guest_path(p: Params) -> str:
    path = p.get("path")
    if not isinstance(path, str) or not path.startswith("/") or len(path) > MAX_PATH:
        raise bad_request(f"path must be an absolute path of at most {MAX_PATH} characters")
    if "\x00" in path or ".." in path.split("/"):
        raise bad_request("path must not contain '..' or NUL")
    return path


def _put_file(vm: dict[str, Any], path: str, content: str) -> None:
    versions = vm.setdefault("files", {})
    tree = tree_at(vm, vm["data_version"])
    tree[path] = content
    version = max([vm["data_version"], *map(int, versions)]) + 1
    versions[str(version)] = tree
    vm["data_version"] = version


def _file(path: str, content: str, vm: dict[str, Any]) -> dict[str, Any]:
    return {"path": path, "size": len(content.encode()), "data_version": vm["data_version"]}


@handles(OpKind.FILE_WRITE)
def file_write(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    """Test hook and guest agent: write one file inside the guest."""
    vm = require_normal_vm(state, p, "write to")
    path = guest_path(p)
    content = p.get("content")
    if not isinstance(content, str) or len(content.encode()) > MAX_FILE_BYTES:
        raise bad_request(f"content must be a string of at most {MAX_FILE_BYTES} bytes")
    if not apply:
        return None
    _put_file(vm, path, content)
    return _file(path, content, vm)


@handles(OpKind.FILE_RESTORE)
def file_restore(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    """Put one file back as a checkpoint holds it; the rest of the VM is left alone."""
    vm = require_normal_vm(state, p, "restore a file of")
    checkpoint = _require_checkpoint(state, vm, p)
    path = guest_path(p)
    saved = tree_at(vm, checkpoint["data_version"])
    if path not in saved:
        raise not_found("file in the checkpoint", path)
    if not apply:
        return None
    _put_file(vm, path, saved[path])
    return _file(path, saved[path], vm)
