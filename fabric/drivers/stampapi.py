"""A driver for stamps that speak the stampsim API, over any transport.

The call protocol (headers, idempotency keys, retries with exponential backoff on
connection errors and 5xx only, polling operations until they end within one overall
deadline, decoding refusals) is stampsim's own client protocol, ``stampsim.protocol``,
which a stamp also uses to call its peer. ``StampApiDriver`` adds what a driver means by
it: answers as result dataclasses, refusals as ``DriverError``s. Subclasses provide
``_send``: ``SimulatedDriver`` over HTTP, ``MemoryDriver`` in process.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self

from stampsim import protocol
from stampsim.errors import ApiError, ErrorCode

from .base import (
    ALL_CAPABILITIES,
    Capability,
    Capacity,
    CheckpointInfo,
    Conflict,
    ConflictCode,
    ContainerInfo,
    DriverError,
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
    VmEvent,
    VmHistory,
    VmInfo,
    VmKind,
    VmUsage,
)

__all__ = ["StampApiDriver", "TransportError"]

_CONFLICT_CODES = {str(code) for code in ConflictCode}
_POLLING = protocol.Polling(first=0.02, growth=1.5, longest=0.5)  # seconds


class TransportError(protocol.NoAnswer):
    """The request got no answer; the message says why (e.g. ``connection refused``)."""


class StampApiDriver:
    """Base of the drivers that speak the stampsim API.

    ``timeout`` bounds each public call as a whole (retries and polling
    included); ``retries`` is how many times one request is tried in all;
    ``backoff`` is the first pause between tries, doubled each time.
    """

    kind = "stampapi"
    capabilities: frozenset[Capability] = ALL_CAPABILITIES  # a stampsim does everything

    def __init__(
        self,
        name: str,
        endpoint: str,
        credentials: Mapping[str, Any] | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
    ) -> None:
        if timeout <= 0 or retries < 1 or backoff < 0:
            raise ValueError("timeout must be > 0, retries >= 1 and backoff >= 0")
        self.name = name
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._token = (credentials or {}).get("token") or None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, endpoint={self.endpoint!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release connections (nothing to do by default)."""

    # -- transport (subclasses) ------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        timeout: float,
    ) -> tuple[int, Any]:
        """One try: ``(status, decoded JSON)``, or ``TransportError``."""
        raise NotImplementedError

    # -- reads -------------------------------------------------------------------
    def health(self) -> StampHealth:
        data = self._read("health", "/v1/health")
        return StampHealth(
            name=data["name"],
            status=data["status"],
            capacity=Capacity(**data["capacity"]),
            allocated=Capacity(**data["allocated"]),
        )

    def inventory(self) -> Inventory:
        data = self._read("inventory", "/v1/inventory")
        return Inventory(
            name=data["name"],
            containers=tuple(_container(o) for o in data["containers"]),
            gateways=tuple(_gateway(o) for o in data["gateways"]),
            networks=tuple(_network(o) for o in data["networks"]),
            nat_rules=tuple(_nat_rule(o) for o in data["nat_rules"]),
            firewall_rules=tuple(_firewall_rule(o) for o in data["firewall_rules"]),
            vms=tuple(_vm(o) for o in data["vms"]),
            checkpoints=tuple(_checkpoint(o) for o in data["checkpoints"]),
            replications=tuple(_replication(o) for o in data["replications"]),
        )

    def usage(self) -> list[VmUsage]:
        data = self._read("usage", "/v1/usage")
        return [VmUsage(*vm) for vm in data["vms"]]

    def usage_history(self, since: datetime, until: datetime) -> list[VmHistory]:
        params = {"since": since.isoformat(), "until": until.isoformat()}
        status, data = self._exchange(
            "history", "GET", "/v1/history", deadline=time.monotonic() + self.timeout,
            params=params,
        )
        if status != 200:
            raise self._error("history", protocol.refusal(status, data))
        return [
            VmHistory(
                vm_id=o["vm_id"],
                container_id=o["container_id"],
                events=tuple(_vm_event(e) for e in o["events"]),
            )
            for o in data["vms"]
        ]

    def external_addresses(self) -> set[str]:
        data = self._read("external-addresses", "/v1/external-addresses")
        return {entry["address"] for entry in data["addresses"]}

    def get_container(self, container_id: str) -> ContainerInfo:
        return _container(
            self._read("container.get", f"/v1/containers/{container_id}")["container"]
        )

    def get_vm(self, vm_id: str) -> VmInfo:
        return _vm(self._read("vm.get", f"/v1/vms/{vm_id}")["vm"])

    def list_checkpoints(self, vm_id: str) -> list[CheckpointInfo]:
        data = self._read("checkpoint.list", f"/v1/vms/{vm_id}/checkpoints")
        return [_checkpoint(o) for o in data["checkpoints"]]

    def replication_status(self, vm_id: str) -> ReplicationInfo | None:
        data = self._read("replication.status", f"/v1/vms/{vm_id}/replication")
        return None if data["replication"] is None else _replication(data["replication"])

    # -- containers and networking ----------------------------------------------------
    def create_container(self, *, key: str, name: str) -> ContainerInfo:
        result = self._mutate("container.create", "POST", "/v1/containers", key, {"name": name})
        return _container(result)

    def delete_container(self, *, key: str, container_id: str, force: bool = False) -> None:
        params = {"force": "true"} if force else None
        self._delete("container.delete", f"/v1/containers/{container_id}", key, params)

    def create_gateway(
        self, *, key: str, container_id: str, external_ip: str, name: str = "edge"
    ) -> GatewayInfo:
        body = {"external_ip": external_ip, "name": name}
        path = f"/v1/containers/{container_id}/gateways"
        return _gateway(self._mutate("gateway.create", "POST", path, key, body))

    def delete_gateway(self, *, key: str, gateway_id: str) -> None:
        self._delete("gateway.delete", f"/v1/gateways/{gateway_id}", key)

    def create_network(
        self, *, key: str, container_id: str, name: str, cidr: str, kind: str = "routed"
    ) -> NetworkInfo:
        body = {"name": name, "cidr": cidr, "kind": kind}
        path = f"/v1/containers/{container_id}/networks"
        return _network(self._mutate("network.create", "POST", path, key, body))

    def delete_network(self, *, key: str, network_id: str) -> None:
        self._delete("network.delete", f"/v1/networks/{network_id}", key)

    def add_nat_rule(
        self, *, key: str, container_id: str, internal_cidr: str, external_ip: str
    ) -> str:
        body = {"internal_cidr": internal_cidr, "external_ip": external_ip}
        path = f"/v1/containers/{container_id}/nat-rules"
        return self._mutate("nat.create", "POST", path, key, body)["id"]

    def delete_nat_rule(self, *, key: str, rule_id: str) -> None:
        self._delete("nat.delete", f"/v1/nat-rules/{rule_id}", key)

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
    ) -> str:
        body = {
            "direction": direction,
            "action": action,
            "source": source,
            "destination": destination,
            "ports": ports,
        }
        path = f"/v1/containers/{container_id}/firewall-rules"
        return self._mutate("firewall.create", "POST", path, key, body)["id"]

    def delete_firewall_rule(self, *, key: str, rule_id: str) -> None:
        self._delete("firewall.delete", f"/v1/firewall-rules/{rule_id}", key)

    # -- VMs ---------------------------------------------------------------------------
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
    ) -> VmInfo:
        body = {
            "name": name,
            "vcpus": vcpus,
            "memory_mb": memory_mb,
            "disk_gb": disk_gb,
            "image": image,
            "network_id": network_id,
            "ip_address": ip_address,
            "power_on": power_on,
        }
        path = f"/v1/containers/{container_id}/vms"
        return _vm(self._mutate("vm.create", "POST", path, key, body))

    def start_vm(self, *, key: str, vm_id: str) -> VmInfo:
        return _vm(self._mutate("vm.start", "POST", f"/v1/vms/{vm_id}/start", key))

    def stop_vm(self, *, key: str, vm_id: str) -> VmInfo:
        return _vm(self._mutate("vm.stop", "POST", f"/v1/vms/{vm_id}/stop", key))

    def restart_vm(self, *, key: str, vm_id: str) -> VmInfo:
        return _vm(self._mutate("vm.restart", "POST", f"/v1/vms/{vm_id}/restart", key))

    def resize_vm(self, *, key: str, vm_id: str, vcpus: int, memory_mb: int) -> VmInfo:
        body = {"vcpus": vcpus, "memory_mb": memory_mb}
        return _vm(self._mutate("vm.resize", "POST", f"/v1/vms/{vm_id}/resize", key, body))

    def delete_vm(self, *, key: str, vm_id: str) -> None:
        self._delete("vm.delete", f"/v1/vms/{vm_id}", key)

    def simulate_guest_write(self, *, key: str, vm_id: str, amount: int = 1) -> VmInfo:
        """Simulator hook (not part of ``Driver``): data written in the guest."""
        body = {"amount": amount}
        return _vm(self._mutate("vm.write", "POST", f"/v1/vms/{vm_id}/write", key, body))

    # -- checkpoints ---------------------------------------------------------------------
    def create_checkpoint(self, *, key: str, vm_id: str, name: str) -> CheckpointInfo:
        path = f"/v1/vms/{vm_id}/checkpoints"
        return _checkpoint(self._mutate("checkpoint.create", "POST", path, key, {"name": name}))

    def restore_checkpoint(self, *, key: str, vm_id: str, checkpoint_id: str) -> VmInfo:
        path = f"/v1/vms/{vm_id}/checkpoints/{checkpoint_id}/restore"
        return _vm(self._mutate("checkpoint.restore", "POST", path, key))

    def delete_checkpoint(self, *, key: str, vm_id: str, checkpoint_id: str) -> None:
        self._delete("checkpoint.delete", f"/v1/vms/{vm_id}/checkpoints/{checkpoint_id}", key)

    # -- guest files -----------------------------------------------------------------------
    def list_files(self, vm_id: str, checkpoint_id: str | None = None) -> list[GuestFile]:
        path = (f"/v1/vms/{vm_id}/checkpoints/{checkpoint_id}/files" if checkpoint_id
                else f"/v1/vms/{vm_id}/files")
        return [_guest_file(o) for o in self._read("file.list", path)["files"]]

    def read_file(self, vm_id: str, path: str) -> GuestFile:
        operation = "file.read"
        deadline = time.monotonic() + self.timeout
        status, payload = self._exchange(
            operation, "GET", f"/v1/vms/{vm_id}/files", deadline=deadline, params={"path": path}
        )
        if status != 200:
            raise self._error(operation, protocol.refusal(status, payload))
        return _guest_file(payload["file"])

    def write_file(self, *, key: str, vm_id: str, path: str, content: str) -> GuestFile:
        body = {"path": path, "content": content}
        return _guest_file(self._mutate("file.write", "POST", f"/v1/vms/{vm_id}/files", key, body))

    def restore_file(self, *, key: str, vm_id: str, checkpoint_id: str, path: str) -> GuestFile:
        url = f"/v1/vms/{vm_id}/checkpoints/{checkpoint_id}/files/restore"
        return _guest_file(self._mutate("file.restore", "POST", url, key, {"path": path}))

    # -- replication -----------------------------------------------------------------------
    def enable_replication(
        self,
        *,
        key: str,
        vm_id: str,
        target_endpoint: str,
        target_container_id: str,
        target_token: str | None = None,
    ) -> ReplicationInfo:
        body = _target(target_endpoint, target_container_id, target_token)
        path = f"/v1/vms/{vm_id}/replication"
        return _replication(self._mutate("replication.enable", "POST", path, key, body))

    def sync_replication(self, *, key: str, vm_id: str) -> ReplicationInfo:
        path = f"/v1/vms/{vm_id}/replication/sync"
        return _replication(self._mutate("replication.sync", "POST", path, key))

    def failover_replication(
        self, *, key: str, vm_id: str, network_id: str | None = None, ip_address: str | None = None
    ) -> VmInfo:
        body = {"network_id": network_id, "ip_address": ip_address}
        path = f"/v1/vms/{vm_id}/replication/failover"
        return _vm(self._mutate("replication.failover", "POST", path, key, body))

    def reverse_replication(
        self,
        *,
        key: str,
        vm_id: str,
        target_endpoint: str,
        target_container_id: str,
        target_token: str | None = None,
    ) -> ReplicationInfo:
        body = _target(target_endpoint, target_container_id, target_token)
        path = f"/v1/vms/{vm_id}/replication/reverse"
        return _replication(self._mutate("replication.reverse", "POST", path, key, body))

    def disable_replication(self, *, key: str, vm_id: str, keep_replica: bool = False) -> None:
        params = {"keep_replica": "true"} if keep_replica else None
        self._delete("replication.disable", f"/v1/vms/{vm_id}/replication", key, params)

    # -- plumbing ------------------------------------------------------------------------
    def _read(self, operation: str, path: str) -> dict[str, Any]:
        return self._get(operation, path, deadline=time.monotonic() + self.timeout)

    def _get(self, operation: str, path: str, *, deadline: float) -> dict[str, Any]:
        status, payload = self._exchange(operation, "GET", path, deadline=deadline)
        if status != 200:
            raise self._error(operation, protocol.refusal(status, payload))
        return payload

    def _mutate(
        self,
        operation: str,
        method: str,
        path: str,
        key: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Start (or find again, by key) an operation and wait for its result."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"{operation}: an idempotency key (non-empty string) is required")
        deadline = time.monotonic() + self.timeout
        status, payload = self._exchange(
            operation, method, path, deadline=deadline, key=key, body=body, params=params
        )
        if status != 202:
            raise self._error(operation, protocol.refusal(status, payload))

        def fetch(operation_path: str) -> dict[str, Any]:
            return self._get(operation, operation_path, deadline=deadline)

        try:
            ended = protocol.wait_for(
                payload["operation"], fetch, deadline=deadline, polling=_POLLING
            )
        except protocol.StillRunning as exc:
            raise OperationTimeout(
                self.name,
                operation,
                f"operation {exc.operation['id']} still running after {self.timeout:g}s"
                " (call again with the same key to wait for it)",
            ) from None
        try:
            return protocol.result_of(ended)
        except ApiError as exc:
            raise self._error(operation, exc) from None

    def _delete(
        self, operation: str, path: str, key: str, params: Mapping[str, str] | None = None
    ) -> None:
        # Already gone counts as done: an undo step has nothing left to do.
        with contextlib.suppress(NotFound):
            self._mutate(operation, "DELETE", path, key, params=params)

    def _exchange(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        deadline: float,
        key: str | None = None,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send with retries; return the first answer below 500 or raise ``StampUnreachable``."""
        headers = protocol.request_headers(token=self._token, key=key)

        def send(timeout: float) -> tuple[int, Any]:
            return self._send(
                method, path, params=params, body=body, headers=headers, timeout=timeout
            )

        try:
            return protocol.exchange(
                send, deadline=deadline, attempts=self.retries, backoff=self.backoff
            )
        except protocol.Unanswered as exc:
            raise StampUnreachable(self.name, operation, str(exc)) from None

    def _error(self, operation: str, refused: ApiError) -> DriverError:
        """A refusal (an answer, or a failed operation's error) as a ``DriverError``."""
        code, detail, status = refused.code, refused.detail, refused.status
        if code == ErrorCode.TARGET_UNREACHABLE:
            return StampUnreachable(self.name, operation, detail, code=code)
        if status == 404 or code == ErrorCode.NOT_FOUND:
            return NotFound(self.name, operation, detail, code=code or str(ErrorCode.NOT_FOUND))
        if status == 409 or code in _CONFLICT_CODES:
            return Conflict(self.name, operation, f"{detail} ({code})", code=code)
        if status == 401:
            return Unauthorized(self.name, operation, detail, code=code)
        if status in (400, 422):
            return InvalidRequest(self.name, operation, detail, code=code)
        return OperationFailed(self.name, operation, f"{detail} ({code or status})", code=code)


# -- answers to results --------------------------------------------------------------------
def _target(endpoint: str, container_id: str, token: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"target_endpoint": endpoint, "target_container_id": container_id}
    if token:
        body["target_token"] = token
    return body


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _container(o: Mapping[str, Any]) -> ContainerInfo:
    return ContainerInfo(
        id=o["id"], name=o["name"], created_at=datetime.fromisoformat(o["created_at"])
    )


def _gateway(o: Mapping[str, Any]) -> GatewayInfo:
    return GatewayInfo(
        id=o["id"], container_id=o["container_id"], name=o["name"], external_ip=o["external_ip"]
    )


def _network(o: Mapping[str, Any]) -> NetworkInfo:
    return NetworkInfo(
        id=o["id"],
        container_id=o["container_id"],
        name=o["name"],
        cidr=o["cidr"],
        gateway_address=o["gateway_address"],
        kind=o["kind"],
    )


def _nat_rule(o: Mapping[str, Any]) -> NatRuleInfo:
    return NatRuleInfo(
        id=o["id"],
        container_id=o["container_id"],
        internal_cidr=o["internal_cidr"],
        external_ip=o["external_ip"],
    )


def _firewall_rule(o: Mapping[str, Any]) -> FirewallRuleInfo:
    return FirewallRuleInfo(
        id=o["id"],
        container_id=o["container_id"],
        direction=o["direction"],
        action=o["action"],
        source=o["source"],
        destination=o["destination"],
        ports=o["ports"],
    )


def _vm(o: Mapping[str, Any]) -> VmInfo:
    return VmInfo(
        id=o["id"],
        container_id=o["container_id"],
        name=o["name"],
        vcpus=o["vcpus"],
        memory_mb=o["memory_mb"],
        disk_gb=o["disk_gb"],
        image=o["image"],
        network_id=o.get("network_id"),
        ip_address=o.get("ip_address"),
        power_state=PowerState(o["power_state"]),
        kind=VmKind(o["kind"]),
        data_version=o["data_version"],
    )


def _vm_event(o: Mapping[str, Any]) -> VmEvent:
    return VmEvent(
        at=datetime.fromisoformat(o["at"]),
        event=o["event"],
        vcpus=o["vcpus"],
        memory_mb=o["memory_mb"],
        disk_gb=o["disk_gb"],
        power_state=PowerState(o["power_state"]),
        kind=VmKind(o["kind"]),
        checkpoints=o["checkpoints"],
        protected=o["protected"],
    )


def _checkpoint(o: Mapping[str, Any]) -> CheckpointInfo:
    return CheckpointInfo(
        id=o["id"],
        vm_id=o["vm_id"],
        name=o["name"],
        data_version=o["data_version"],
        created_at=datetime.fromisoformat(o["created_at"]),
    )


def _guest_file(o: Mapping[str, Any]) -> GuestFile:
    return GuestFile(path=o["path"], size=o["size"], content=o.get("content"))


def _replication(o: Mapping[str, Any]) -> ReplicationInfo:
    return ReplicationInfo(
        id=o["id"],
        vm_id=o["vm_id"],
        role=ReplicationRole(o["role"]),
        state=ReplicationState(o["state"]),
        partner_stamp=o["partner_stamp"],
        partner_vm_id=o["partner_vm_id"],
        partner_endpoint=o.get("partner_endpoint"),
        partner_container_id=o.get("partner_container_id"),
        sequence=o["sequence"],
        last_sync_at=_when(o.get("last_sync_at")),
        data_version=o["data_version"],
    )
