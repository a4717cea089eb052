"""Replication operations that talk to another stamp.

Each has a ``check`` (run when the request arrives and again before the
change, like a local handler) and a ``run`` that works in three steps: read
what it needs under the fabric's lock, call the peer *without* the lock, then
record the outcome under the lock.  If the record step finds the world has
changed, the peer's change is undone (best effort) and the operation fails.

The relationship is stored on both sides, keyed by the local VM id, with
``role`` ``source`` (holds the primary, pushes syncs) or ``target`` (holds the
replica).  The target side needs nothing from the source for a failover.

* enable  (source): create the replica on the target (powered off, kind
  ``replica``, carrying the current ``data_version``: sequence 1).
* sync    (source): push ``data_version``; sequence + 1, ``last_sync_at``.
* failover (target): local only, see ``handlers.replication_failover``.
* reverse (former target, VM failed over): replicate back to the former
  source; the old primary there is adopted as the new replica when it still
  exists in the target container, otherwise a new replica is made.
* disable (either side): on the source, remove (or with ``keep_replica``
  detach) the replica on the target, then forget the relationship; on the
  target, local only.  Without a relationship it is a no-op.

A peer that cannot be reached makes the operation fail with
``target-unreachable`` (nothing changed on this stamp).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from . import handlers as h
from . import replicas
from . import validation as v
from .errors import ApiError, ErrorCode, bad_request
from .handlers import Context, OpKind
from .state import ReplicationRole, ReplicationState, State, VmKind, public


class Fabric(Protocol):
    """What a remote operation needs of the fabric that runs it (``fabric.Fabric``). A
    protocol, not an import: the fabric imports this module's operations."""

    name: str
    lock: AbstractContextManager[Any]
    state: State
    peers: Any

    @property
    def context(self) -> Context: ...

__all__ = ["REMOTE_OPERATIONS", "RemoteOperation"]


@dataclass(frozen=True)
class RemoteOperation:
    check: Callable[[Context, State, dict[str, Any]], Any]
    run: Callable[[Fabric, dict[str, Any]], dict[str, Any]]


def _target(p: dict[str, Any]) -> tuple[str, str, str | None]:
    endpoint = v.text(p, "target_endpoint", max_length=2000)
    container_id = v.text(p, "target_container_id")
    token = p.get("target_token")
    if token is not None and not isinstance(token, str):
        raise bad_request("target_token must be a string")
    return endpoint, container_id, token


def _spec(vm: dict[str, Any]) -> dict[str, Any]:
    return {k: vm[k] for k in ("name", "vcpus", "memory_mb", "disk_gb", "image", "data_version")}


# -- enable ----------------------------------------------------------------------
def check_enable(ctx: Context, state: State, p: dict[str, Any]) -> dict[str, Any]:
    vm = h.require_normal_vm(state, p, "replicate")
    _target(p)
    existing = state.replications.get(vm["id"])
    if existing is not None:
        raise ApiError(
            409,
            ErrorCode.EXISTS,
            f"VM {vm['id']!r} already has a replication relationship ({existing['role']})",
        )
    return vm


def run_enable(fabric: Fabric, op: dict[str, Any]) -> dict[str, Any]:
    p = op["params"]
    with fabric.lock:
        vm = check_enable(fabric.context, fabric.state, p)
        body = {**_spec(vm), "source": {"stamp": fabric.name, "vm_id": vm["id"]}}
    return _create_remote_and_record(fabric, op, body, check_enable)


def _create_remote_and_record(
    fabric: Fabric, op: dict[str, Any], body: dict[str, Any], recheck: Callable[..., Any]
) -> dict[str, Any]:
    p = op["params"]
    endpoint, container_id, token = _target(p)
    made = fabric.peers.call(
        endpoint,
        token,
        "POST",
        f"/v1/containers/{container_id}/replicas",
        body=body,
        key=f"{op['id']}/replica.create",
    )
    replica = made["vm"]
    with fabric.lock:
        try:
            vm = recheck(fabric.context, fabric.state, p)
        except ApiError:
            if not made.get("adopted"):
                _undo_remote(fabric, op, endpoint, token, replica["id"])
            raise
        record = replicas.replication_record(
            fabric.context,
            vm["id"],
            ReplicationRole.SOURCE,
            partner_stamp=made["stamp"],
            partner_vm_id=replica["id"],
            data_version=vm["data_version"],
            partner_endpoint=endpoint,
            partner_container_id=container_id,
        )
        record["target_token"] = token
        fabric.state.replications[vm["id"]] = record
        return public(record)


def _undo_remote(
    fabric: Fabric, op: dict[str, Any], endpoint: str, token: str | None, replica_id: str
) -> None:
    # Best effort: if this fails the target's inventory shows the orphan for reconciliation.
    with contextlib.suppress(ApiError):
        fabric.peers.call(
            endpoint, token, "DELETE", f"/v1/replicas/{replica_id}", key=f"{op['id']}/replica.undo"
        )


# -- sync ------------------------------------------------------------------------
def check_sync(
    ctx: Context, state: State, p: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    vm = h.require_vm(state, p)
    return vm, replicas.require_replication(state, vm, ReplicationRole.SOURCE)


def run_sync(fabric: Fabric, op: dict[str, Any]) -> dict[str, Any]:
    p = op["params"]
    with fabric.lock:
        vm, record = check_sync(fabric.context, fabric.state, p)
        sequence, data_version, synced_at = (
            record["sequence"] + 1,
            vm["data_version"],
            fabric.context.now(),
        )
        endpoint, token, replica_id = (
            record["partner_endpoint"],
            record.get("target_token"),
            record["partner_vm_id"],
        )
    try:
        fabric.peers.call(
            endpoint,
            token,
            "POST",
            f"/v1/replicas/{replica_id}/sync",
            key=f"{op['id']}/replica.sync",
            body={"sequence": sequence, "data_version": data_version, "synced_at": synced_at},
        )
    except ApiError as exc:
        if exc.status == 404:
            raise ApiError(
                409, ErrorCode.REPLICA_MISSING, f"replica {replica_id!r} is gone: {exc.detail}"
            ) from None
        raise
    with fabric.lock:
        _, record = check_sync(fabric.context, fabric.state, p)
        if sequence > record["sequence"]:
            record.update(sequence=sequence, last_sync_at=synced_at, data_version=data_version)
        return public(record)


# -- reverse ---------------------------------------------------------------------
def check_reverse(ctx: Context, state: State, p: dict[str, Any]) -> dict[str, Any]:
    vm = h.require_vm(state, p)
    record = replicas.require_replication(state, vm, ReplicationRole.TARGET)
    if record["state"] != ReplicationState.FAILED_OVER or vm["kind"] != VmKind.NORMAL:
        raise ApiError(
            409,
            ErrorCode.STATE,
            f"VM {vm['id']!r} must be failed over before replication is reversed",
        )
    _target(p)
    return vm


def run_reverse(fabric: Fabric, op: dict[str, Any]) -> dict[str, Any]:
    p = op["params"]
    with fabric.lock:
        vm = check_reverse(fabric.context, fabric.state, p)
        record = fabric.state.replications[vm["id"]]
        body = {
            **_spec(vm),
            "source": {"stamp": fabric.name, "vm_id": vm["id"]},
            "adopt": {"stamp": record["partner_stamp"], "vm_id": record["partner_vm_id"]},
        }
    return _create_remote_and_record(fabric, op, body, check_reverse)


# -- disable ---------------------------------------------------------------------
def check_disable(ctx: Context, state: State, p: dict[str, Any]) -> dict[str, Any]:
    vm = h.require_vm(state, p)
    v.boolean(p, "keep_replica")
    return vm


def run_disable(fabric: Fabric, op: dict[str, Any]) -> dict[str, Any]:
    p = op["params"]
    keep = v.boolean(p, "keep_replica")
    with fabric.lock:
        vm = check_disable(fabric.context, fabric.state, p)
        record = fabric.state.replications.get(vm["id"])
        if record is None:
            return {"vm_id": vm["id"], "disabled": False}
        if record["role"] == ReplicationRole.TARGET:
            return {**replicas.disable_target_side(fabric.state, p), "disabled": True}
        endpoint, token, replica_id = (
            record["partner_endpoint"],
            record.get("target_token"),
            record["partner_vm_id"],
        )
        record_id = record["id"]
    query = "?keep_replica=true" if keep else ""
    try:
        fabric.peers.call(
            endpoint,
            token,
            "DELETE",
            f"/v1/replicas/{replica_id}{query}",
            key=f"{op['id']}/replica.delete",
        )
    except ApiError as exc:
        if exc.status not in (404, 409):  # gone already, or no longer a replica there
            raise
    with fabric.lock:
        current = fabric.state.replications.get(vm["id"])
        if current is not None and current["id"] == record_id:
            del fabric.state.replications[vm["id"]]
        return {"vm_id": vm["id"], "disabled": True}


REMOTE_OPERATIONS: dict[OpKind, RemoteOperation] = {
    OpKind.REPLICATION_ENABLE: RemoteOperation(check_enable, run_enable),
    OpKind.REPLICATION_SYNC: RemoteOperation(check_sync, run_sync),
    OpKind.REPLICATION_REVERSE: RemoteOperation(check_reverse, run_reverse),
    OpKind.REPLICATION_DISABLE: RemoteOperation(check_disable, run_disable),
}
