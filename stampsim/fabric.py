"""The simulated fabric controller: asynchronous, idempotent operations.

``Fabric.submit(kind, params, key)`` is the one entry point for changes:

1. A key seen before returns its operation as it is now (same kind and
   parameters required, else ``409 idempotency-mismatch``); nothing runs twice.
2. An injected call failure answers ``503`` (nothing recorded, key stays free).
3. The operation's checks run at once: a refusal is answered directly
   (400/404/409) and nothing is recorded.
4. The operation is recorded ``running`` with its key and saved.  With no
   latency it runs before the answer; otherwise a background thread waits the
   latency and runs it.  Running re-checks and applies atomically, so a failed
   operation (refusal, injected failure) leaves nothing behind.

Operations and their keys are kept for ``operation_retention`` after they finish
(``--operation-retention-hours``, default 24 h): each accepted call first forgets those
finished longer ago, so the same key after that is a new call.  The portal's keys are
its job steps' (one run of one job), which a worker retries within minutes; a retried
job is a new run with new keys.

On start-up every operation still ``running`` on disk (the process died under
it) is marked ``failed`` with ``interrupted``: local operations apply their
change in the same atomic step that marks them finished, so an interrupted one
changed nothing here.  (A replication operation may have created a replica on
the peer; the peer's inventory shows it.)
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import ApiError, ErrorCode, bad_request
from .faults import Faults
from .handlers import HANDLERS, Context, OpKind
from .peers import HttpPeers, PeerClient
from .replicas import REPLICA_HANDLERS
from .replication import REMOTE_OPERATIONS
from .state import (
    CAPACITY_KEYS,
    DEFAULT_CAPACITY,
    OperationState,
    State,
    Store,
    new_id,
    public,
    utcnow,
)

__all__ = ["DEFAULT_OPERATION_RETENTION", "Fabric"]

# How long a finished operation, and the idempotency key it was asked with, is kept.
DEFAULT_OPERATION_RETENTION = timedelta(hours=24)

# Operations that only change this stamp, checked and applied in one atomic step.
LOCAL_OPERATIONS = {**HANDLERS, **REPLICA_HANDLERS}

log = logging.getLogger(__name__)


class Fabric:
    """One simulated stamp: state, operations, faults and peers."""

    def __init__(
        self,
        name: str,
        *,
        data_dir: str | None = None,
        capacity: dict[str, int] | None = None,
        faults: Faults | None = None,
        peers: PeerClient | None = None,
        durable: bool = True,
        clock: Callable[[], str] = utcnow,
        initial_state: dict[str, Any] | None = None,
        operation_retention: timedelta | None = DEFAULT_OPERATION_RETENTION,
    ) -> None:
        """``operation_retention`` ``None`` keeps every operation and key forever."""
        self.name = name
        self.lock = threading.RLock()
        self.store = Store(data_dir, durable=durable)
        # ``initial_state`` (a state document) lets an in-process stamp "restart".
        self.state = State(initial_state if initial_state is not None else self.store.load())
        self._initial_capacity = _capacity({**DEFAULT_CAPACITY, **(capacity or {})})
        self.capacity = dict(self._initial_capacity)
        self.faults = faults or Faults()
        self._initial_faults = self.faults.to_dict()
        self.peers = peers or HttpPeers()
        self._clock = clock
        self._frozen_at: str | None = None  # set by the admin API: tests bill by the minute
        self._crash_due = threading.Event()
        self.operation_retention = operation_retention
        # Operations and keys forgotten but not journalled yet: the next save writes them.
        self._pruned: list[tuple[str, str]] = []
        self._recover()

    @property
    def context(self) -> Context:
        return Context(name=self.name, capacity=self.capacity, now=self.now)

    # -- queries -------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        with self.lock:
            return {
                "name": self.name,
                "status": "ok",
                "capacity": dict(self.capacity),
                "allocated": self.state.allocated(),
            }

    def inventory(self) -> dict[str, Any]:
        with self.lock:
            return {"name": self.name, **self.state.inventory()}

    def external_addresses(self) -> list[dict[str, str]]:
        with self.lock:
            return [
                {"address": address, "holder": holder["id"], "container_id": holder["container_id"]}
                for address, holder in self.state.external_address_holders()
            ]

    def get(self, table: str, obj_id: str, what: str) -> dict[str, Any]:
        with self.lock:
            return public(self.state.require(table, obj_id, what))

    def list_in(self, table: str, *, container_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            objs = self.state.table(table).values()
            return [
                public(o)
                for o in objs
                if container_id is None or o.get("container_id") == container_id
            ]

    def checkpoints(self, vm_id: str) -> list[dict[str, Any]]:
        with self.lock:
            self.state.require("vms", vm_id, "VM")
            return [public(c) for c in self.state.checkpoints.values() if c["vm_id"] == vm_id]

    def replication(self, vm_id: str) -> dict[str, Any] | None:
        with self.lock:
            self.state.require("vms", vm_id, "VM")
            return public(self.state.replications.get(vm_id))

    def usage(self) -> dict[str, Any]:
        with self.lock:
            return {"name": self.name, "at": self.now(), "vms": self.state.usage()}

    def history(self, since: str | None, until: str | None) -> dict[str, Any]:
        """The VM events of ``[since, until)`` (ISO 8601 times; ``until`` defaults to now)."""
        start, end = _moment(since, "since"), _moment(until or self.now(), "until")
        if start is None or end is None or end <= start:
            raise bad_request("since and until must be ISO 8601 times with since < until")
        with self.lock:
            return {"name": self.name, "since": start.isoformat(), "until": end.isoformat(),
                    "vms": self.state.history_between(start, end)}

    def operation(self, op_id: str) -> dict[str, Any]:
        with self.lock:
            return public(self.state.require("operations", op_id, "operation"))

    # -- changes -------------------------------------------------------------
    def submit(self, kind: OpKind, params: dict[str, Any], key: str | None) -> dict[str, Any]:
        """Accept (or replay) a mutating call; returns the operation's public view."""
        if not key or not isinstance(key, str) or len(key) > 200:
            raise ApiError(
                400,
                ErrorCode.KEY_REQUIRED,
                "an Idempotency-Key header (1-200 characters) is required",
            )
        fingerprint = json.dumps([str(kind), params], sort_keys=True, default=str)
        with self.lock:
            self._prune_operations()
            seen = self.state.keys.get(key)
            if seen is not None:
                if seen["fingerprint"] != fingerprint:
                    raise ApiError(
                        409,
                        ErrorCode.IDEMPOTENCY_MISMATCH,
                        f"Idempotency-Key {key!r} was used for another call ({seen['kind']})",
                    )
                return public(self.state.operations[seen["operation"]])
            if self.faults.call_fails(kind):
                raise ApiError(
                    self.faults.fail_status,
                    ErrorCode.INJECTED_FAILURE,
                    f"injected failure of {kind} (nothing was done)",
                )
            self._check(kind, params)
            op = {
                "id": new_id("op"),
                "kind": str(kind),
                "state": OperationState.RUNNING,
                "result": None,
                "error": None,
                "created_at": self.now(),
                "finished_at": None,
                "key": key,
                "params": copy.deepcopy(params),
            }
            self.state.operations[op["id"]] = op
            self.state.keys[key] = {
                "operation": op["id"],
                "kind": str(kind),
                "fingerprint": fingerprint,
            }
            self._save(("operations", op["id"]), ("keys", key))
            if self.faults.count_operation():
                self._crash_due.set()
            latency = self.faults.latency_ms
        if latency:
            threading.Thread(
                target=self._run_later,
                args=(op["id"], latency / 1000),
                daemon=True,
                name=f"op-{op['id']}",
            ).start()
        else:
            self._run(op["id"])
        return self.operation(op["id"])

    def operations(self) -> list[dict[str, Any]]:
        """Every operation with the key it was asked with (what a client's retries did)."""
        with self.lock:
            return [
                {field: op.get(field) for field in
                 ("id", "kind", "state", "key", "created_at", "finished_at")}
                for op in self.state.operations.values()
            ]

    def crash_due(self) -> bool:
        """True once ``crash_after`` has run out (the server then exits hard)."""
        return self._crash_due.is_set()

    # -- admin -----------------------------------------------------------------
    def now(self) -> str:
        """The stamp's time: the wall clock, unless the admin API froze it."""
        return self._frozen_at or self._clock()

    def set_clock(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{"now": ISO 8601 with an offset}`` freezes the stamp's clock there (every
        operation, event and answer reads it) until set again; ``{"now": null}`` goes back
        to the wall clock."""
        if set(payload) != {"now"}:
            raise bad_request('expected {"now": an ISO 8601 time or null}')
        now = payload["now"]
        if now is not None and not isinstance(now, str):
            raise bad_request(f"now is not an ISO 8601 time: {now!r}")
        if now is not None:
            now = _moment(now, "now").astimezone(UTC).isoformat(timespec="milliseconds")
        with self.lock:
            self._frozen_at = now
        return {"now": self.now(), "frozen": self.frozen}

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def set_faults(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.faults.update(payload)
        return self.faults.to_dict()

    def set_capacity(self, payload: dict[str, Any]) -> dict[str, int]:
        with self.lock:
            self.capacity = _capacity({**self.capacity, **payload})
            return dict(self.capacity)

    def reset(self) -> None:
        """Forget everything (objects, operations, keys); knobs back to their start values."""
        with self.lock:
            self.state = State()
            self.capacity = dict(self._initial_capacity)
            self.faults.update(self._initial_faults)
            self._frozen_at = None
            self._pruned = []
            self.store.save(self.state.data, full=True)

    # -- internals -------------------------------------------------------------
    def _check(self, kind: OpKind, params: dict[str, Any]) -> None:
        if kind in REMOTE_OPERATIONS:
            REMOTE_OPERATIONS[kind].check(self.context, self.state, params)
        else:
            LOCAL_OPERATIONS[kind](self.context, self.state, params, False)

    def _run_later(self, op_id: str, delay: float) -> None:
        time.sleep(delay)  # the simulated fabric latency
        self._run(op_id)

    def _run(self, op_id: str) -> None:
        with self.lock:
            op = self.state.operations.get(op_id)
            if op is None or op["state"] != OperationState.RUNNING:
                return  # wiped by admin/reset meanwhile
            kind = OpKind(op["kind"])
            if self.faults.operation_fails(kind):
                self._finish(
                    op,
                    error=ApiError(
                        503,
                        ErrorCode.INJECTED_FAILURE,
                        f"injected failure of {kind} (nothing was done)",
                    ),
                )
                return
            if kind not in REMOTE_OPERATIONS:
                try:
                    result = LOCAL_OPERATIONS[kind](self.context, self.state, op["params"], True)
                except ApiError as exc:
                    self._finish(op, error=exc)
                except Exception as exc:  # a bug: record it on the operation, keep serving
                    log.exception("operation %s failed unexpectedly", op_id)
                    self._finish(
                        op, error=ApiError(500, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
                    )
                else:
                    self._finish(op, result=result)
                return
        try:
            result = REMOTE_OPERATIONS[kind].run(self, op)
        except ApiError as exc:
            error: ApiError | None = exc
        except Exception as exc:
            log.exception("operation %s failed unexpectedly", op_id)
            error = ApiError(500, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        else:
            error = None
        with self.lock:
            if self.state.operations.get(op_id) is op:
                self._finish(op, result=None if error else result, error=error)

    def _finish(
        self, op: dict[str, Any], *, result: Any = None, error: ApiError | None = None
    ) -> None:
        op["state"] = OperationState.FAILED if error else OperationState.SUCCEEDED
        op["result"] = None if error else result
        op["error"] = error.as_operation_error() if error else None
        op["finished_at"] = self.now()
        if not error:
            self._record_history(op, result)
        self._save(("operations", op["id"]))

    def _record_history(self, op: dict[str, Any], result: Any) -> None:
        """Note in the VMs' history what a finished operation changed of them."""
        kind, params = op["kind"], op["params"]
        vm_ids = {params.get("vm_id")}
        if isinstance(result, dict) and str(result.get("id", "")).startswith("vm-"):
            vm_ids.add(result["id"])
        if kind == OpKind.CONTAINER_DELETE:  # a forced delete removes the VMs it holds
            vm_ids |= {vm_id for vm_id, entry in self.state.history.items()
                       if entry["container_id"] == params.get("container_id")}
        event = _EVENTS.get(kind, "changed")
        for vm_id in vm_ids - {None}:
            self.state.record_vm(vm_id, event, op["finished_at"])

    def _recover(self) -> None:
        with self.lock:
            interrupted = [
                op for op in self.state.operations.values() if op["state"] == OperationState.RUNNING
            ]
            for op in interrupted:
                self._finish(
                    op,
                    error=ApiError(
                        500,
                        ErrorCode.INTERRUPTED,
                        "the stamp restarted before the operation finished; nothing was"
                        " changed here, retry with a new key",
                    ),
                )
            if interrupted:
                log.warning("%d interrupted operation(s) marked failed", len(interrupted))

    def _prune_operations(self) -> None:
        """Forget the operations (and keys) finished longer ago than the retention."""
        if self.operation_retention is None:
            return
        horizon = datetime.fromisoformat(self.now()) - self.operation_retention
        if horizon.tzinfo is None:
            horizon = horizon.replace(tzinfo=UTC)
        self._pruned += self.state.prune_operations(horizon)

    def _save(self, *touched: tuple[str, str]) -> None:
        pruned, self._pruned = self._pruned, []
        self.store.save(self.state.data, touched=[*pruned, *touched])


_EVENTS = {
    OpKind.VM_CREATE: "created",
    OpKind.REPLICA_CREATE: "created",
    OpKind.VM_START: "started",
    OpKind.VM_STOP: "stopped",
    OpKind.VM_RESIZE: "resized",
    OpKind.VM_DELETE: "deleted",
}


def _moment(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{name} is not an ISO 8601 time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _capacity(values: dict[str, Any]) -> dict[str, int]:
    unknown = set(values) - set(CAPACITY_KEYS)
    if unknown:
        raise bad_request(f"unknown capacity field(s): {', '.join(sorted(unknown))}")
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad_request(f"capacity {key} must be a non-negative integer")
    return {key: values[key] for key in CAPACITY_KEYS}
