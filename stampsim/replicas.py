"""Replication steps that stay on this stamp: failover, and the target side.

``replica.create`` / ``replica.sync`` / ``replica.delete`` are what a source
stamp calls on its target (see ``replication.py``); ``replication.failover``
runs on the target alone, so it works while the source is down.  Handlers
follow the contract of ``handlers.py`` (check everything, then change only if
``apply``).
"""

from __future__ import annotations

from typing import Any

from . import handlers as h
from . import validation as v
from .errors import ErrorCode, bad_request, conflict
from .handlers import Context, Handler, OpKind, Params
from .state import (
    PowerState,
    ReplicationRole,
    ReplicationState,
    State,
    VmKind,
    new_id,
    public,
)

__all__ = [
    "REPLICA_HANDLERS",
    "disable_target_side",
    "replication_record",
    "require_replication",
]


def require_replication(state: State, vm: dict[str, Any], role: ReplicationRole) -> dict[str, Any]:
    record = state.replications.get(vm["id"])
    if record is None or record["role"] != role:
        where = "from" if role == ReplicationRole.SOURCE else "to"
        raise conflict(ErrorCode.STATE, f"VM {vm['id']!r} is not replicated {where} this stamp")
    return record


def replication_record(
    ctx: Context,
    vm_id: str,
    role: ReplicationRole,
    *,
    partner_stamp: str,
    partner_vm_id: str,
    data_version: int,
    partner_endpoint: str | None = None,
    partner_container_id: str | None = None,
) -> dict[str, Any]:
    now = ctx.now()
    return {
        "id": new_id("rep"),
        "vm_id": vm_id,
        "role": role,
        "state": ReplicationState.ENABLED,
        "partner_stamp": partner_stamp,
        "partner_vm_id": partner_vm_id,
        "partner_endpoint": partner_endpoint,
        "partner_container_id": partner_container_id,
        "sequence": 1,  # enabling copies the data once: that is the first sync
        "last_sync_at": now,
        "data_version": data_version,
        "created_at": now,
    }


def replication_failover(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    """Runs on the target; never contacts the source, which may be gone.

    ``network_id`` (and ``ip_address``) attach the failed-over VM to a network
    of its container, as a recovery plan's network mapping would.
    """
    vm = h.require_vm(state, p)
    record = require_replication(state, vm, ReplicationRole.TARGET)
    if record["state"] == ReplicationState.FAILED_OVER:
        return public(vm) if apply else None  # already done: nothing more to do
    network_id, ip_address = v.optional_text(p, "network_id"), None
    if network_id is not None:
        network = state.require("networks", network_id, "network")
        if network["container_id"] != vm["container_id"]:
            raise bad_request(f"network {network_id!r} belongs to another container")
        ip_address = h.vm_address(state, network, p.get("ip_address"))
    if not apply:
        return None
    vm["kind"] = VmKind.NORMAL
    if network_id is not None:
        vm["network_id"], vm["ip_address"] = network_id, ip_address
    record["state"] = ReplicationState.FAILED_OVER
    record["failed_over_at"] = ctx.now()
    return public(vm)


def _replica_spec(p: Params) -> dict[str, Any]:
    return {
        "name": v.text(p, "name"),
        "vcpus": v.integer(p, "vcpus", maximum=1024),
        "memory_mb": v.integer(p, "memory_mb", minimum=64),
        "disk_gb": v.integer(p, "disk_gb"),
        "image": v.text(p, "image"),
        "data_version": v.integer(p, "data_version", minimum=0),
    }


def _reference(p: Params, key: str) -> dict[str, str] | None:
    ref = p.get(key)
    if ref is None:
        return None
    if not isinstance(ref, dict):
        raise bad_request(f"{key} must be an object with stamp and vm_id")
    return {"stamp": v.text(ref, "stamp"), "vm_id": v.text(ref, "vm_id")}


def replica_create(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    """Create a powered-off replica, or turn an old primary back into one.

    ``adopt`` names the VM a reverse replication comes back to: when it lives
    on this stamp in the same container it becomes the replica (its disks are
    reused) instead of a new VM being made.
    """
    container = state.require("containers", v.text(p, "container_id"), "container")
    spec = _replica_spec(p)
    source = _reference(p, "source")
    if source is None:
        raise bad_request("source is required")
    adopt = _reference(p, "adopt")
    adopted = None
    if adopt is not None and adopt["stamp"] == ctx.name:
        candidate = state.vms.get(adopt["vm_id"])
        if candidate is not None and candidate["container_id"] == container["id"]:
            adopted = candidate
    if adopted is None:
        h.check_capacity(
            ctx,
            state,
            {
                "vcpus": spec["vcpus"],
                "memory_mb": spec["memory_mb"],
                "storage_gb": spec["disk_gb"],
                "vms": 1,
            },
        )
    else:
        h.check_capacity(
            ctx,
            state,
            {
                "vcpus": spec["vcpus"] - adopted["vcpus"],
                "memory_mb": spec["memory_mb"] - adopted["memory_mb"],
            },
        )
    if not apply:
        return None
    if adopted is None:
        vm = {
            "id": new_id("vm"),
            "container_id": container["id"],
            "network_id": None,
            "ip_address": None,
            "boot_count": 0,
            "created_at": ctx.now(),
            **spec,
        }
        state.vms[vm["id"]] = vm
    else:
        vm = adopted
        vm.update({k: spec[k] for k in ("vcpus", "memory_mb", "data_version")})
    vm["kind"] = VmKind.REPLICA
    vm["power_state"] = PowerState.STOPPED
    record = replication_record(
        ctx,
        vm["id"],
        ReplicationRole.TARGET,
        partner_stamp=source["stamp"],
        partner_vm_id=source["vm_id"],
        data_version=spec["data_version"],
    )
    state.replications[vm["id"]] = record
    return {
        "stamp": ctx.name,
        "vm": public(vm),
        "replication": public(record),
        "adopted": adopted is not None,
    }


def replica_sync(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    vm = h.require_vm(state, p)
    record = require_replication(state, vm, ReplicationRole.TARGET)
    sequence = v.integer(p, "sequence")
    data_version = v.integer(p, "data_version", minimum=0)
    synced_at = v.text(p, "synced_at")
    if record["state"] == ReplicationState.FAILED_OVER:
        raise conflict(
            ErrorCode.STATE, f"replica {vm['id']!r} has been failed over and takes no more syncs"
        )
    if not apply:
        return None
    if sequence > record["sequence"]:  # an older or repeated sync changes nothing
        vm["data_version"] = data_version
        record.update(sequence=sequence, last_sync_at=synced_at, data_version=data_version)
    return {"stamp": ctx.name, "vm": public(vm), "replication": public(record)}


def replica_delete(ctx: Context, state: State, p: Params, apply: bool) -> Any:
    """Drop the target side; a failed-over VM (or a kept replica) stays as a normal VM."""
    vm = h.require_vm(state, p)
    require_replication(state, vm, ReplicationRole.TARGET)
    keep = v.boolean(p, "keep_replica")
    if not apply:
        return None
    return _drop_target_side(state, vm, keep)


def _drop_target_side(state: State, vm: dict[str, Any], keep: bool) -> dict[str, Any]:
    if vm["kind"] == VmKind.REPLICA and not keep:
        state.remove_vm(vm["id"])
        return {"vm_id": vm["id"], "replica_deleted": True}
    vm["kind"] = VmKind.NORMAL
    state.replications.pop(vm["id"], None)
    return {"vm_id": vm["id"], "replica_deleted": False}


def disable_target_side(state: State, p: Params) -> dict[str, Any]:
    """``replication.disable`` on the target stamp needs no peer: used by replication.py."""
    vm = h.require_vm(state, p)
    return _drop_target_side(state, vm, v.boolean(p, "keep_replica"))


REPLICA_HANDLERS: dict[OpKind, Handler] = {
    OpKind.REPLICATION_FAILOVER: replication_failover,
    OpKind.REPLICA_CREATE: replica_create,
    OpKind.REPLICA_SYNC: replica_sync,
    OpKind.REPLICA_DELETE: replica_delete,
}
