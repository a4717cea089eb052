"""stampsim's HTTP API: a fabric controller simulator over JSON.

Conventions
-----------
* JSON in and out.  Errors: ``{"error": code, "detail": text}`` with status
  400 bad input (``invalid``, ``key-required``), 401 bad or missing token
  (``unauthorized``; only when started with ``--token``: send
  ``Authorization: Bearer <token>`` on every call), 404 unknown object or
  route (``not-found``), 405, 409 conflict (``capacity``, ``state``,
  ``in-use``, ``exists``, ``cidr-overlap``, ``address-in-use``,
  ``idempotency-mismatch``, ``replica-missing``), 503 injected failure
  (``injected-failure``).  The codes are ``errors.ErrorCode``.
* Every mutating call (marked *op* below) needs an ``Idempotency-Key``
  header and answers ``202 {"operation": {"id", "kind", "state", "result",
  "error", "created_at", "finished_at"}}``; ``state`` is ``running``,
  ``succeeded`` or ``failed``.  With no latency the operation has already
  ended in that first answer.  Poll ``GET /v1/operations/<id>``.  A failed
  operation's ``error`` is ``{"code", "detail", "status"}`` with the codes
  above plus ``interrupted`` (the stamp restarted under it; nothing changed)
  and ``target-unreachable`` (the peer stamp did not answer).  The same key
  again returns the same operation (keys are stored with the state and
  survive restarts); the same key for another call is 409.  An operation and
  its key are forgotten ``--operation-retention-hours`` (default 24) after the
  operation finished: the same key after that is a new call.
* Checks run when the call arrives: a refusal (400/404/409) is answered at
  once and records nothing.  They run again, atomically with the change,
  when the operation runs; a refusal then fails the operation and changes
  nothing.
* Capacity counts every VM (replicas and stopped VMs included).
* Choices: VMs start running unless ``power_on`` is false; resize and
  checkpoint restore need the VM stopped (409 ``state``); a VM that
  replicates elsewhere cannot be deleted before replication is disabled;
  replicas refuse power, resize, write and checkpoint calls until failed
  over.  Deleting a container with VMs or networks is 409 ``in-use`` unless
  ``?force=true``, which removes everything in it (replicas it holds for
  other stamps included; their sources are not told).

URL table
---------
``{x}`` is an id; *op* marks an asynchronous operation, its kind in brackets.

========== ========================================== ============================================
method     path                                       body / answer
========== ========================================== ============================================
GET        /v1/health                                 {name, status: "ok", capacity: {vcpus,
                                                      memory_mb, storage_gb, vms}, allocated}
GET        /v1/inventory                              {name, containers, gateways, networks,
                                                      nat_rules, firewall_rules, vms,
                                                      checkpoints, replications}
GET        /v1/usage                                  {name, at, vms: [[id, vcpus, memory_mb,
                                                      disk_gb, checkpoints, protected,
                                                      running]]}: what metering reads each
                                                      minute (no replicas)
GET        /v1/history?since=&until=                  {name, since, until, vms: [{vm_id,
                                                      container_id, events: [{event, at, vcpus,
                                                      memory_mb, disk_gb, power_state, kind,
                                                      checkpoints, protected}]}]}: every VM that
                                                      existed in [since, until), its events
                                                      from the last one at or before since
GET        /v1/external-addresses                     {addresses: [{address, holder,
                                                      container_id}]}
GET        /v1/operations/{op}                        {operation}
GET        /v1/containers                             {containers: [...]}
POST       /v1/containers                             op [container.create] {name}
GET        /v1/containers/{c}                         {container}
DELETE     /v1/containers/{c}[?force=true]            op [container.delete]
POST       /v1/containers/{c}/gateways                op [gateway.create] {external_ip, name?}
GET|DELETE /v1/gateways/{g}                           {gateway} | op [gateway.delete]
POST       /v1/containers/{c}/networks                op [network.create] {name, cidr,
                                                      kind?: routed (default) | isolated}
GET|DELETE /v1/networks/{n}                           {network} | op [network.delete]
POST       /v1/containers/{c}/nat-rules               op [nat.create] {internal_cidr, external_ip}
GET|DELETE /v1/nat-rules/{r}                          {nat_rule} | op [nat.delete]
POST       /v1/containers/{c}/firewall-rules          op [firewall.create] {direction: inbound |
                                                      outbound, action: allow | deny, source,
                                                      destination ("any", IP or CIDR),
                                                      ports?: "any" (default) | "22,80-90"}
GET|DELETE /v1/firewall-rules/{r}                     {firewall_rule} | op [firewall.delete]
GET        /v1/vms[?container_id=]                    {vms: [...]}
POST       /v1/containers/{c}/vms                     op [vm.create] {name, vcpus, memory_mb,
                                                      disk_gb, image, network_id?, ip_address?
                                                      (next free if absent), power_on?: true}
GET|DELETE /v1/vms/{v}                                {vm} | op [vm.delete]
POST       /v1/vms/{v}/start, /stop, /restart         op [vm.start, vm.stop, vm.restart]
POST       /v1/vms/{v}/resize                         op [vm.resize] {vcpus, memory_mb}
POST       /v1/vms/{v}/write                          op [vm.write] {amount?: 1} (test hook:
                                                      data_version += amount)
GET        /v1/vms/{v}/checkpoints                    {checkpoints: [...]}
POST       /v1/vms/{v}/checkpoints                    op [checkpoint.create] {name}
POST       /v1/vms/{v}/checkpoints/{k}/restore        op [checkpoint.restore]
DELETE     /v1/vms/{v}/checkpoints/{k}                op [checkpoint.delete]
GET        /v1/vms/{v}/files[?path=]                  {files: [{path, size}]} | {file: {path,
                                                      size, content}} (the guest's files)
POST       /v1/vms/{v}/files                          op [file.write] {path, content}
GET        /v1/vms/{v}/checkpoints/{k}/files          {files: [{path, size}]} in the checkpoint
POST       /v1/vms/{v}/checkpoints/{k}/files/restore  op [file.restore] {path}
GET        /v1/vms/{v}/replication                    {replication: {...} | null}
POST       /v1/vms/{v}/replication                    op [replication.enable] {target_endpoint,
                                                      target_container_id, target_token?}
POST       /v1/vms/{v}/replication/sync               op [replication.sync]
POST       /v1/vms/{v}/replication/failover           op [replication.failover] (on the target)
                                                      {network_id?, ip_address?}
POST       /v1/vms/{v}/replication/reverse            op [replication.reverse] (on the target
                                                      after failover) {target_endpoint,
                                                      target_container_id, target_token?}
DELETE     /v1/vms/{v}/replication[?keep_replica=1]   op [replication.disable]
POST       /v1/containers/{c}/replicas                op [replica.create] (stamp to stamp)
POST       /v1/replicas/{v}/sync                      op [replica.sync] (stamp to stamp)
DELETE     /v1/replicas/{v}[?keep_replica=true]       op [replica.delete] (stamp to stamp)
GET|POST   /v1/admin/faults                           {latency_ms, fail_rate, fail_next,
                                                      fail_op_rate, fail_op_next, crash_after,
                                                      fail_status, hang_ms};
                                                      POST replaces the fields it names
GET        /v1/admin/operations                       {operations: [{id, kind, state, key,
                                                      created_at, finished_at}]}
POST       /v1/admin/capacity                         {vcpus?, memory_mb?, storage_gb?, vms?}
GET|POST   /v1/admin/clock                            {now: ISO 8601 | null} freezes the
                                                      stamp's clock there (null: the wall
                                                      clock again); answers {now, frozen}
POST       /v1/admin/reset                            wipe all state, knobs back to start values
========== ========================================== ============================================

Faults (see ``faults.py``): ``fail_rate``/``fail_next`` make the *call*
answer 503 with nothing recorded (a retry with the same key may succeed);
``fail_op_rate``/``fail_op_next`` make the accepted *operation* fail with
``injected-failure`` and change nothing; ``fail_status`` is the status of the refused
calls (503, or 500, 502, 504); ``hang_ms`` holds every non-admin call that long before
it is handled.  ``crash_after N``: once N more
operations have been accepted the process exits hard (``os._exit(75)``)
right after answering the call that used up the count; an operation still
running then (latency) is found ``failed``/``interrupted`` after restart.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import protocol
from .errors import ApiError, ErrorCode, bad_request
from .fabric import DEFAULT_OPERATION_RETENTION, Fabric
from .faults import Faults
from .handlers import OpKind, guest_path, tree_at

__all__ = ["CRASH_EXIT_CODE", "Api", "StampServer", "make_server", "serve"]

log = logging.getLogger(__name__)

CRASH_EXIT_CODE = 75
Query = Callable[["Api", dict[str, str], dict[str, str], dict[str, Any]], tuple[int, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    kind: OpKind | None = None  # a mutating call starting this kind of operation
    query: Query | None = None  # or a read / admin call answered directly
    flags: tuple[str, ...] = ()  # query-string flags handed to the operation
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[A-Za-z0-9._~-]+)", self.template)
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))


def _get(table: str, what: str, param: str, wrap: str) -> Query:
    return lambda api, path, query, body: (200, {wrap: api.fabric.get(table, path[param], what)})


def _admin_faults(
    api: Api, path: dict[str, str], query: dict[str, str], body: dict[str, Any]
) -> tuple[int, Any]:
    return 200, api.fabric.set_faults(body)


def _admin_clock(
    api: Api, path: dict[str, str], query: dict[str, str], body: dict[str, Any]
) -> tuple[int, Any]:
    return 200, api.fabric.set_clock(body)


def _admin_capacity(
    api: Api, path: dict[str, str], query: dict[str, str], body: dict[str, Any]
) -> tuple[int, Any]:
    return 200, {"capacity": api.fabric.set_capacity(body)}


def _admin_reset(
    api: Api, path: dict[str, str], query: dict[str, str], body: dict[str, Any]
) -> tuple[int, Any]:
    api.fabric.reset()
    return 200, {"reset": True}


def _listing(tree: dict[str, str]) -> list[dict[str, Any]]:
    return [{"path": path, "size": len(tree[path].encode())} for path in sorted(tree)]


def _guest_files(api: Api, path: dict[str, str], query: dict[str, str]) -> tuple[int, Any]:
    with api.fabric.lock:
        vm = api.fabric.state.require("vms", path["vm_id"], "VM")
        tree = tree_at(vm, vm["data_version"])
        if "path" not in query:
            return 200, {"files": _listing(tree)}
        wanted = guest_path(query)
        if wanted not in tree:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no file {wanted!r} on VM {vm['id']!r}")
        content = tree[wanted]
        return 200, {"file": {"path": wanted, "size": len(content.encode()), "content": content}}


def _checkpoint_files(api: Api, path: dict[str, str]) -> tuple[int, Any]:
    with api.fabric.lock:
        state = api.fabric.state
        vm = state.require("vms", path["vm_id"], "VM")
        checkpoint = state.checkpoints.get(path["checkpoint_id"])
        if checkpoint is None or checkpoint["vm_id"] != vm["id"]:
            raise ApiError(404, ErrorCode.NOT_FOUND,
                           f"no checkpoint {path['checkpoint_id']!r} of VM {vm['id']!r}")
        return 200, {"files": _listing(tree_at(vm, checkpoint["data_version"]))}


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/health", query=lambda api, p, q, b: (200, api.fabric.health())),
    Route("GET", "/v1/inventory", query=lambda api, p, q, b: (200, api.fabric.inventory())),
    Route("GET", "/v1/usage", query=lambda api, p, q, b: (200, api.fabric.usage())),
    Route(
        "GET",
        "/v1/history",
        query=lambda api, p, q, b: (200, api.fabric.history(q.get("since"), q.get("until"))),
    ),
    Route(
        "GET",
        "/v1/external-addresses",
        query=lambda api, p, q, b: (200, {"addresses": api.fabric.external_addresses()}),
    ),
    Route(
        "GET",
        "/v1/operations/{operation_id}",
        query=lambda api, p, q, b: (200, {"operation": api.fabric.operation(p["operation_id"])}),
    ),
    Route(
        "GET",
        "/v1/containers",
        query=lambda api, p, q, b: (200, {"containers": api.fabric.list_in("containers")}),
    ),
    Route("POST", "/v1/containers", OpKind.CONTAINER_CREATE),
    Route(
        "GET",
        "/v1/containers/{container_id}",
        query=_get("containers", "container", "container_id", "container"),
    ),
    Route("DELETE", "/v1/containers/{container_id}", OpKind.CONTAINER_DELETE, flags=("force",)),
    Route("POST", "/v1/containers/{container_id}/gateways", OpKind.GATEWAY_CREATE),
    Route(
        "GET",
        "/v1/gateways/{gateway_id}",
        query=_get("gateways", "gateway", "gateway_id", "gateway"),
    ),
    Route("DELETE", "/v1/gateways/{gateway_id}", OpKind.GATEWAY_DELETE),
    Route("POST", "/v1/containers/{container_id}/networks", OpKind.NETWORK_CREATE),
    Route(
        "GET",
        "/v1/networks/{network_id}",
        query=_get("networks", "network", "network_id", "network"),
    ),
    Route("DELETE", "/v1/networks/{network_id}", OpKind.NETWORK_DELETE),
    Route("POST", "/v1/containers/{container_id}/nat-rules", OpKind.NAT_CREATE),
    Route(
        "GET", "/v1/nat-rules/{rule_id}", query=_get("nat_rules", "NAT rule", "rule_id", "nat_rule")
    ),
    Route("DELETE", "/v1/nat-rules/{rule_id}", OpKind.NAT_DELETE),
    Route("POST", "/v1/containers/{container_id}/firewall-rules", OpKind.FIREWALL_CREATE),
    Route(
        "GET",
        "/v1/firewall-rules/{rule_id}",
        query=_get("firewall_rules", "firewall rule", "rule_id", "firewall_rule"),
    ),
    Route("DELETE", "/v1/firewall-rules/{rule_id}", OpKind.FIREWALL_DELETE),
    Route(
        "GET",
        "/v1/vms",
        query=lambda api, p, q, b: (
            200,
            {"vms": api.fabric.list_in("vms", container_id=q.get("container_id"))},
        ),
    ),
    Route("POST", "/v1/containers/{container_id}/vms", OpKind.VM_CREATE),
    Route("GET", "/v1/vms/{vm_id}", query=_get("vms", "VM", "vm_id", "vm")),
    Route("DELETE", "/v1/vms/{vm_id}", OpKind.VM_DELETE),
    Route("POST", "/v1/vms/{vm_id}/start", OpKind.VM_START),
    Route("POST", "/v1/vms/{vm_id}/stop", OpKind.VM_STOP),
    Route("POST", "/v1/vms/{vm_id}/restart", OpKind.VM_RESTART),
    Route("POST", "/v1/vms/{vm_id}/resize", OpKind.VM_RESIZE),
    Route("POST", "/v1/vms/{vm_id}/write", OpKind.VM_WRITE),
    Route(
        "GET",
        "/v1/vms/{vm_id}/checkpoints",
        query=lambda api, p, q, b: (200, {"checkpoints": api.fabric.checkpoints(p["vm_id"])}),
    ),
    Route("POST", "/v1/vms/{vm_id}/checkpoints", OpKind.CHECKPOINT_CREATE),
    Route("POST", "/v1/vms/{vm_id}/checkpoints/{checkpoint_id}/restore", OpKind.CHECKPOINT_RESTORE),
    Route("DELETE", "/v1/vms/{vm_id}/checkpoints/{checkpoint_id}", OpKind.CHECKPOINT_DELETE),
    Route("GET", "/v1/vms/{vm_id}/files", query=lambda api, p, q, b: _guest_files(api, p, q)),
    Route("POST", "/v1/vms/{vm_id}/files", OpKind.FILE_WRITE),
    Route(
        "GET",
        "/v1/vms/{vm_id}/checkpoints/{checkpoint_id}/files",
        query=lambda api, p, q, b: _checkpoint_files(api, p),
    ),
    Route(
        "POST", "/v1/vms/{vm_id}/checkpoints/{checkpoint_id}/files/restore", OpKind.FILE_RESTORE
    ),
    Route(
        "GET",
        "/v1/vms/{vm_id}/replication",
        query=lambda api, p, q, b: (200, {"replication": api.fabric.replication(p["vm_id"])}),
    ),
    Route("POST", "/v1/vms/{vm_id}/replication", OpKind.REPLICATION_ENABLE),
    Route("POST", "/v1/vms/{vm_id}/replication/sync", OpKind.REPLICATION_SYNC),
    Route("POST", "/v1/vms/{vm_id}/replication/failover", OpKind.REPLICATION_FAILOVER),
    Route("POST", "/v1/vms/{vm_id}/replication/reverse", OpKind.REPLICATION_REVERSE),
    Route(
        "DELETE", "/v1/vms/{vm_id}/replication", OpKind.REPLICATION_DISABLE, flags=("keep_replica",)
    ),
    Route("POST", "/v1/containers/{container_id}/replicas", OpKind.REPLICA_CREATE),
    Route("POST", "/v1/replicas/{vm_id}/sync", OpKind.REPLICA_SYNC),
    Route("DELETE", "/v1/replicas/{vm_id}", OpKind.REPLICA_DELETE, flags=("keep_replica",)),
    Route("GET", "/v1/admin/faults", query=lambda api, p, q, b: (200, api.fabric.faults.to_dict())),
    Route("POST", "/v1/admin/faults", query=_admin_faults),
    Route("GET", "/v1/admin/operations",
          query=lambda api, p, q, b: (200, {"operations": api.fabric.operations()})),
    Route("POST", "/v1/admin/capacity", query=_admin_capacity),
    Route("GET", "/v1/admin/clock",
          query=lambda api, p, q, b: (200, {"now": api.fabric.now(),
                                            "frozen": api.fabric.frozen})),
    Route("POST", "/v1/admin/clock", query=_admin_clock),
    Route("POST", "/v1/admin/reset", query=_admin_reset),
)


class Api:
    """Transport-free request handling: the HTTP server and the memory driver share it."""

    def __init__(
        self, fabric: Fabric, *, token: str | None = None, routes: tuple[Route, ...] = ROUTES
    ) -> None:
        self.fabric = fabric
        self.token = token
        self.routes = routes

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any]:
        """Answer one request; ``headers`` keys must be lower-case."""
        if not target.startswith("/v1/admin/"):
            hang = self.fabric.faults.hang_seconds()
            if hang:
                time.sleep(hang)  # the injected hang (faults.hang_ms)
        try:
            return self._handle(method.upper(), target, headers, body)
        except ApiError as exc:
            return exc.status, exc.payload()
        except Exception as exc:  # never let a bug kill the connection without an answer
            log.exception("%s %s failed", method, target)
            return 500, {"error": ErrorCode.INTERNAL, "detail": f"{type(exc).__name__}: {exc}"}

    def _handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any]:
        self._authorize(headers)
        split = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(split.query))
        route, path = self._match(method, split.path.rstrip("/") or "/")
        payload = _json_body(body) if method in {"POST", "PUT", "PATCH"} else {}
        if route.query is not None:
            return route.query(self, path, query, payload)
        assert route.kind is not None
        params = {**payload, **{f: query[f] for f in route.flags if f in query}, **path}
        key = headers.get(protocol.IDEMPOTENCY_KEY.lower())
        operation = self.fabric.submit(route.kind, params, key)
        return 202, {"operation": operation}

    def _authorize(self, headers: Mapping[str, str]) -> None:
        if self.token is None:
            return
        supplied = headers.get(protocol.AUTHORIZATION.lower(), "")
        if not hmac.compare_digest(supplied.encode(), protocol.bearer(self.token).encode()):
            raise ApiError(401, ErrorCode.UNAUTHORIZED, "missing or wrong bearer token")

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = []
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict()
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                405,
                ErrorCode.METHOD_NOT_ALLOWED,
                f"{method} not allowed on {path} (use {', '.join(allowed)})",
            )
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no route {path}")


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise bad_request(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise bad_request("body must be a JSON object")
    return payload


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stampsim/1"
    timeout = 60  # an idle keep-alive connection is closed after this
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: StampServer

    def do_GET(self) -> None:
        self._respond()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _respond(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            status, payload = 400, {"error": ErrorCode.INVALID, "detail": "bad Content-Length"}
            self.close_connection = True
        else:
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = self.server.api.handle(self.command, self.path, headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header(protocol.CONTENT_TYPE, protocol.JSON)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        if self.server.api.fabric.crash_due():
            self.server.crash()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class StampServer(ThreadingHTTPServer):
    """A threading HTTP server around one ``Api``."""

    daemon_threads = True
    allow_reuse_address = True
    # Clients (a worker's concurrent DR steps, a peer's replication traffic: one new
    # connection per call) open many connections at once; socketserver's backlog of 5
    # overflows, and each dropped connect waits a second for the kernel to try it again.
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], api: Api, *, on_crash: Callable[[], None] | None = None
    ) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self._on_crash = on_crash

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def crash(self) -> None:
        """Exit hard like a crashing controller (tests serving in a thread pass ``on_crash``)."""
        if self._on_crash is not None:
            self._on_crash()
            return
        log.warning("crash_after reached: exiting with status %d", CRASH_EXIT_CODE)
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"stampsim-{self.api.fabric.name}",
            daemon=True,
        )
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def make_server(
    *,
    host: str = "127.0.0.1",
    port: int = 8101,
    name: str = "stamp",
    data_dir: str | os.PathLike[str] | None = None,
    token: str | None = None,
    capacity: dict[str, int] | None = None,
    latency_ms: int = 0,
    fail_rate: dict[str, float] | None = None,
    fail_op_rate: dict[str, float] | None = None,
    crash_after: int | None = None,
    seed: int | None = None,
    durable: bool = True,
    on_crash: Callable[[], None] | None = None,
    operation_retention: timedelta | None = DEFAULT_OPERATION_RETENTION,
) -> StampServer:
    """Build a bound (not yet serving) stampsim; ``port=0`` picks a free port."""
    faults = Faults(
        latency_ms=latency_ms,
        fail_rate=fail_rate,
        fail_op_rate=fail_op_rate,
        crash_after=crash_after,
        seed=seed,
    )
    fabric = Fabric(
        name,
        data_dir=None if data_dir is None else os.fspath(data_dir),
        capacity=capacity,
        faults=faults,
        durable=durable,
        operation_retention=operation_retention,
    )
    return StampServer((host, port), Api(fabric, token=token), on_crash=on_crash)


def serve(**options: Any) -> None:
    """Run a stampsim in this thread until SIGINT/SIGTERM; options as ``make_server``."""
    server = make_server(**options)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    print(f"stampsim {server.api.fabric.name!r} listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
