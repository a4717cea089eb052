"""``MemoryDriver``: an in-process stamp for fast tests.

Each endpoint (any string, e.g. ``memory://stamp-a``) names one in-process
stamp in a module-level registry, so every driver built for the same endpoint
shares its state.  The stamp is the stampsim model itself, called without
sockets, so behaviour and errors are those of a ``SimulatedDriver`` talking
to a stampsim; replication between two memory stamps goes through the
registry.  Memory stamps keep nothing on disk and check no token.

Test helpers: ``reset()`` forgets every stamp; ``fabric(endpoint)`` gives the
model (faults, capacity); ``admin_request`` calls its API directly;
``set_reachable`` simulates an outage; ``restart`` simulates a process
restart (operations still running end ``failed``/``interrupted``).  A
``crash_after`` fault makes the stamp unreachable until ``restart``.
"""

from __future__ import annotations

import copy
import json
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

from stampsim import Api, Fabric, PeerClient, PeerUnreachable, protocol

from .stampapi import StampApiDriver, TransportError

__all__ = [
    "MemoryDriver",
    "admin_request",
    "fabric",
    "reset",
    "restart",
    "set_reachable",
]


class _MemoryStamp:
    def __init__(self, name: str) -> None:
        self.api = Api(Fabric(name, peers=_RegistryPeers(), durable=False))
        self.reachable = True

    def request(
        self, method: str, target: str, headers: Mapping[str, str], body: Any
    ) -> tuple[int, Any]:
        raw = json.dumps(body).encode() if body is not None else b""
        status, payload = self.api.handle(
            method, target, {k.lower(): v for k, v in headers.items()}, raw
        )
        if self.api.fabric.crash_due():
            self.reachable = False  # crashed: down until restart()
        return status, json.loads(json.dumps(payload))  # a copy, as if it crossed a wire

    def restart(self) -> None:
        old = self.api.fabric
        with old.lock:
            data = copy.deepcopy(old.state.data)
        self.api = Api(
            Fabric(
                old.name,
                peers=_RegistryPeers(),
                capacity=old.capacity,
                durable=False,
                initial_state=data,
            )
        )
        self.reachable = True


_registry: dict[str, _MemoryStamp] = {}
_registry_lock = threading.Lock()


def _stamp(endpoint: str, name: str | None = None) -> _MemoryStamp:
    with _registry_lock:
        stamp = _registry.get(endpoint)
        if stamp is None:
            stamp = _registry[endpoint] = _MemoryStamp(name or endpoint)
        return stamp


def reset() -> None:
    """Forget every memory stamp."""
    with _registry_lock:
        _registry.clear()


def fabric(endpoint: str, name: str | None = None) -> Fabric:
    """The model behind a memory stamp (created if needed)."""
    return _stamp(endpoint, name).api.fabric


def admin_request(
    endpoint: str, method: str, path: str, body: Mapping[str, Any] | None = None
) -> tuple[int, Any]:
    """Call a memory stamp's API directly (reachable or not), e.g. ``/v1/admin/faults``."""
    return _stamp(endpoint).request(method, path, {}, dict(body) if body is not None else None)


def set_reachable(endpoint: str, reachable: bool) -> None:
    """Make a memory stamp (un)reachable, for drivers and peer stamps alike."""
    _stamp(endpoint).reachable = reachable


def restart(endpoint: str) -> None:
    """Simulate a process restart: state kept, running operations interrupted."""
    _stamp(endpoint).restart()


class _RegistryPeers(PeerClient):
    """Replication traffic between memory stamps."""

    def __init__(self) -> None:
        super().__init__(timeout=10.0, attempts=3, backoff=0.0)

    def send(
        self,
        endpoint: str,
        token: str | None,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        key: str | None,
        timeout: float,
    ) -> tuple[int, dict[str, Any]]:
        with _registry_lock:
            stamp = _registry.get(endpoint)
        if stamp is None or not stamp.reachable:
            raise PeerUnreachable(f"connection refused (no reachable memory stamp at {endpoint})")
        return stamp.request(method, path, protocol.request_headers(token=token, key=key), body)


class MemoryDriver(StampApiDriver):
    """The driver for memory stamps; same API, retries and errors as ``SimulatedDriver``."""

    kind = "memory"

    def __init__(
        self,
        name: str,
        endpoint: str,
        credentials: Mapping[str, Any] | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.0,
    ) -> None:
        super().__init__(
            name, endpoint, credentials, timeout=timeout, retries=retries, backoff=backoff
        )
        _stamp(endpoint, name)

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
        stamp = _stamp(self.endpoint, self.name)
        if not stamp.reachable:
            raise TransportError("connection refused (memory stamp is down)")
        target = f"{path}?{urllib.parse.urlencode(params)}" if params else path
        return stamp.request(method, target, headers, body)
