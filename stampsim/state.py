"""The fabric's object model, capacity accounting and persistence.

The whole state is one JSON document::

    {"schema": 1,
     "containers": {id: {...}}, "gateways": {...}, "networks": {...},
     "nat_rules": {...}, "firewall_rules": {...}, "vms": {...},
     "checkpoints": {...}, "replications": {vm_id: {...}},
     "history": {vm_id: {"vm_id", "container_id", "events": [...]}},
     "operations": {id: {...}}, "keys": {idempotency key: {...}}}

``history`` is what metering backfills from when the portal could not read the
stamp: per VM (deleted ones included), a bounded list of snapshots of what is
metered (size, power, kind, checkpoints, protection), one per change, each with
its time.  A VM keeps at most ``HISTORY_EVENTS`` of them (the oldest kept one is
a whole snapshot, so dropping older ones loses nothing after it) and a deleted
VM's entry is dropped ``HISTORY_DAYS`` after its deletion (looked for at a VM's
deletion, at most once an hour of the stamp's clock: the look walks every entry).

``operations`` and ``keys`` hold every operation and the idempotency key it was
asked with, for a retention window the fabric sets (``prune_operations``): an
operation finished longer ago than that is forgotten with its key, so the same key
afterwards is a new call.

``Store`` keeps it in ``<data dir>`` as a snapshot (``state.json``) and a
journal (``journal.jsonl``): every change appends one line holding the records
it touched (whole records, or ``null`` for a removed one) and is ``fsync``-ed
before the call is answered, so a change costs what it touched, not the size of
the state: the inventory and history tables are ``Table``s, which note every id
looked up or written through them, and a save compares only those records with
what was saved last, never a whole table.  A line is one change, all or nothing:
a crash in the middle of an append leaves a torn last line, which loading ignores
(that change was never answered).  When the journal outgrows the snapshot it is folded into a new
snapshot, written through a temporary file, ``fsync`` and ``os.replace``, and
truncated; replaying a journal over a snapshot that already holds it changes
nothing, so a crash between the two steps is harmless.  Without a data
directory the state lives in memory only (used by the in-process memory driver).

Capacity is a property of the running process (command-line flags), not of
the stored state: every VM counts against it whatever its power state or kind,
because a powered-off replica must be able to start after a failover.
"""

from __future__ import annotations

import copy
import enum
import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import not_found

__all__ = [
    "CAPACITY_KEYS",
    "DEFAULT_CAPACITY",
    "HISTORY_DAYS",
    "HISTORY_EVENTS",
    "RESOURCES",
    "OperationState",
    "PowerState",
    "ReplicationRole",
    "ReplicationState",
    "State",
    "Store",
    "Table",
    "VmKind",
    "new_id",
    "public",
    "utcnow",
]

SCHEMA_VERSION = 1
RESOURCES = (
    "containers",
    "gateways",
    "networks",
    "nat_rules",
    "firewall_rules",
    "vms",
    "checkpoints",
    "replications",
)
# Tables journalled by comparison with what was saved last (``history`` is not inventory).
JOURNALED = (*RESOURCES, "history")
HISTORY_EVENTS = 64
HISTORY_DAYS = 35
# The least time between two looks for deleted VMs' entries older than HISTORY_DAYS.
HISTORY_PRUNE_EVERY = timedelta(hours=1)
# What a history event copies from a VM record.
_METERED_FIELDS = ("vcpus", "memory_mb", "disk_gb", "power_state", "kind")
CAPACITY_KEYS = ("vcpus", "memory_mb", "storage_gb", "vms")
DEFAULT_CAPACITY = {
    "vcpus": 1024,
    "memory_mb": 4 * 1024 * 1024,
    "storage_gb": 200 * 1024,
    "vms": 2000,
}

# Fields kept on disk but never shown to clients.
_PRIVATE_FIELDS = {"target_token", "params", "key", "fingerprint", "files"}


class PowerState(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class VmKind(enum.StrEnum):
    NORMAL = "normal"
    REPLICA = "replica"


class ReplicationRole(enum.StrEnum):
    SOURCE = "source"  # this stamp holds the primary VM and pushes syncs
    TARGET = "target"  # this stamp holds the replica (or the failed-over VM)


class ReplicationState(enum.StrEnum):
    ENABLED = "enabled"
    FAILED_OVER = "failed-over"


class OperationState(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _when(value: str) -> datetime:
    moment = datetime.fromisoformat(value) if value else datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def public(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy of a stored object without its private fields."""
    if obj is None:
        return None
    return {k: copy.deepcopy(v) for k, v in obj.items() if k not in _PRIVATE_FIELDS}


class Table(dict[str, dict[str, Any]]):
    """A table of records that remembers which ids were looked up or written since
    ``drain()``, so a save compares those records only, not the whole table.

    A record can only be changed in place after it was fetched by its id (``t[id]``,
    ``t.get(id)``, ``t.setdefault``), and every such fetch is noted; walking the table
    (``values()``, ``items()``) is not, so code that changes a record must fetch it by
    id, as the handlers do.  ``Store.CHECK_TRACKING`` (on in stampsim's tests) checks
    that against a comparison of the whole table.
    """

    __slots__ = ("touched",)

    def __init__(self, rows: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__(rows or {})
        self.touched: set[str] = set()

    def __getitem__(self, obj_id: str) -> dict[str, Any]:
        self.touched.add(obj_id)
        return super().__getitem__(obj_id)

    def get(self, obj_id: str, default: Any = None) -> Any:  # type: ignore[override]
        self.touched.add(obj_id)
        return super().get(obj_id, default)

    def setdefault(self, obj_id: str, default: Any = None) -> Any:  # type: ignore[override]
        self.touched.add(obj_id)
        return super().setdefault(obj_id, default)

    def __setitem__(self, obj_id: str, record: dict[str, Any]) -> None:
        self.touched.add(obj_id)
        super().__setitem__(obj_id, record)

    def __delitem__(self, obj_id: str) -> None:
        self.touched.add(obj_id)
        super().__delitem__(obj_id)

    def pop(self, obj_id: str, *default: Any) -> Any:  # type: ignore[override]
        self.touched.add(obj_id)
        return super().pop(obj_id, *default)

    def popitem(self) -> tuple[str, dict[str, Any]]:
        obj_id, record = super().popitem()
        self.touched.add(obj_id)
        return obj_id, record

    def update(self, *args: Any, **kwargs: Any) -> None:
        rows = dict(*args, **kwargs)
        self.touched.update(rows)
        super().update(rows)

    def __ior__(self, other: Any) -> Table:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        self.touched.update(self.keys())
        super().clear()

    def drain(self) -> set[str]:
        """The ids noted since the last drain (and forget them)."""
        touched, self.touched = self.touched, set()
        return touched


class State:
    """The fabric's objects and the queries the rules need.

    Not thread-safe by itself: the fabric holds its lock around every use.
    """

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = data if data is not None else {}
        self.data.setdefault("schema", SCHEMA_VERSION)
        for table in JOURNALED:
            self.data[table] = Table(self.data.get(table))
        for table in ("operations", "keys"):  # journalled by the ids the fabric names
            self.data.setdefault(table, {})
        self._history_pruned_at: datetime | None = None

    # -- tables ----------------------------------------------------------
    def table(self, name: str) -> dict[str, dict[str, Any]]:
        return self.data[name]

    @property
    def containers(self) -> dict[str, dict[str, Any]]:
        return self.data["containers"]

    @property
    def gateways(self) -> dict[str, dict[str, Any]]:
        return self.data["gateways"]

    @property
    def networks(self) -> dict[str, dict[str, Any]]:
        return self.data["networks"]

    @property
    def nat_rules(self) -> dict[str, dict[str, Any]]:
        return self.data["nat_rules"]

    @property
    def firewall_rules(self) -> dict[str, dict[str, Any]]:
        return self.data["firewall_rules"]

    @property
    def vms(self) -> dict[str, dict[str, Any]]:
        return self.data["vms"]

    @property
    def checkpoints(self) -> dict[str, dict[str, Any]]:
        return self.data["checkpoints"]

    @property
    def replications(self) -> dict[str, dict[str, Any]]:
        """Replication relationships keyed by the local VM's id (one per VM)."""
        return self.data["replications"]

    @property
    def history(self) -> dict[str, dict[str, Any]]:
        """Metered snapshots per VM id, deleted VMs included (see the module docstring)."""
        return self.data["history"]

    @property
    def operations(self) -> dict[str, dict[str, Any]]:
        return self.data["operations"]

    @property
    def keys(self) -> dict[str, dict[str, Any]]:
        return self.data["keys"]

    def require(self, table: str, obj_id: str, what: str) -> dict[str, Any]:
        obj = self.data[table].get(obj_id)
        if obj is None:
            raise not_found(what, obj_id)
        return obj

    # -- queries ---------------------------------------------------------
    def in_container(self, table: str, container_id: str) -> list[dict[str, Any]]:
        return [o for o in self.data[table].values() if o.get("container_id") == container_id]

    def vms_on_network(self, network_id: str) -> list[dict[str, Any]]:
        return [vm for vm in self.vms.values() if vm.get("network_id") == network_id]

    def allocated(self) -> dict[str, int]:
        vms = self.vms.values()
        return {
            "vcpus": sum(vm["vcpus"] for vm in vms),
            "memory_mb": sum(vm["memory_mb"] for vm in vms),
            "storage_gb": sum(vm["disk_gb"] for vm in vms),
            "vms": len(self.vms),
        }

    def external_address_holders(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(address, holder) for every external address a gateway or NAT rule holds."""
        for gateway in self.gateways.values():
            yield gateway["external_ip"], gateway
        for rule in self.nat_rules.values():
            yield rule["external_ip"], rule

    # -- cascading removal -----------------------------------------------
    def remove_vm(self, vm_id: str) -> None:
        self.vms.pop(vm_id, None)
        self.replications.pop(vm_id, None)
        for cp_id in [c["id"] for c in self.checkpoints.values() if c["vm_id"] == vm_id]:
            del self.checkpoints[cp_id]

    def remove_container(self, container_id: str) -> None:
        for vm in self.in_container("vms", container_id):
            self.remove_vm(vm["id"])
        for table in ("networks", "gateways", "nat_rules", "firewall_rules"):
            for obj in self.in_container(table, container_id):
                del self.data[table][obj["id"]]
        self.containers.pop(container_id, None)

    def usage(self) -> list[list[Any]]:
        """What is metered of each VM now, compactly: ``[id, vcpus, memory_mb, disk_gb,
        checkpoints, protected, running]`` per VM (replicas left out: their source is
        metered)."""
        checkpoints: dict[str, int] = {}
        for checkpoint in self.checkpoints.values():
            checkpoints[checkpoint["vm_id"]] = checkpoints.get(checkpoint["vm_id"], 0) + 1
        protected = {
            vm_id for vm_id, r in self.replications.items()
            if r["role"] == ReplicationRole.SOURCE and r["state"] == ReplicationState.ENABLED
        }
        return [
            [vm["id"], vm["vcpus"], vm["memory_mb"], vm["disk_gb"],
             checkpoints.get(vm["id"], 0), vm["id"] in protected,
             vm["power_state"] == PowerState.RUNNING]
            for vm in self.vms.values()
            if vm["kind"] == VmKind.NORMAL
        ]

    # -- history -----------------------------------------------------------
    def record_vm(self, vm_id: str, event: str, at: str) -> None:
        """Append what is metered of VM ``vm_id`` now (or its deletion) to its history.

        Nothing is appended when the snapshot equals the last one (a restart, a write)."""
        vm = self.vms.get(vm_id)
        entry = self.history.get(vm_id)
        if vm is None:
            if entry is None or entry["events"][-1]["event"] == "deleted":
                return
            snapshot: dict[str, Any] = {**entry["events"][-1], "event": "deleted"}
        else:
            replication = self.replications.get(vm_id)
            snapshot = {
                "event": event,
                **{f: vm[f] for f in _METERED_FIELDS},
                "checkpoints": sum(1 for c in self.checkpoints.values() if c["vm_id"] == vm_id),
                "protected": bool(
                    replication is not None
                    and replication["role"] == ReplicationRole.SOURCE
                    and replication["state"] == ReplicationState.ENABLED
                ),
            }
            if entry is None:
                entry = {"vm_id": vm_id, "container_id": vm["container_id"], "events": []}
                self.history[vm_id] = entry
            last = entry["events"][-1] if entry["events"] else None
            if last is not None and {**last, "event": event, "at": at} == {**snapshot, "at": at}:
                return
        entry = {**entry, "events": [*entry["events"], {**snapshot, "at": at}][-HISTORY_EVENTS:]}
        self.history[vm_id] = entry
        if snapshot["event"] == "deleted":
            self._prune_history(at)

    def _prune_history(self, now: str) -> None:
        moment = _when(now)
        last = self._history_pruned_at
        if last is not None and last <= moment < last + HISTORY_PRUNE_EVERY:
            return  # looked less than an hour ago (a clock set back looks again)
        self._history_pruned_at = moment
        horizon = moment - timedelta(days=HISTORY_DAYS)
        for vm_id in [
            vm_id
            for vm_id, entry in self.history.items()
            if entry["events"][-1]["event"] == "deleted"
            and _when(entry["events"][-1]["at"]) < horizon
        ]:
            del self.history[vm_id]

    def history_between(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Each VM that existed in ``[since, until)``: its events before ``until``, starting
        with the last one at or before ``since`` (the state the window opens with).

        A VM with no history (created before history was kept) starts with a snapshot of
        its current record at its creation time."""
        found = []
        for vm_id in {*self.history, *self.vms}:
            entry = self.history.get(vm_id)
            if entry is None:
                self.record_vm(vm_id, "observed", self.vms[vm_id].get("created_at") or "")
                entry = self.history.get(vm_id)
                if entry is None:
                    continue
            events = [e for e in entry["events"] if _when(e["at"]) < until]
            if not events:
                continue
            opening = [i for i, e in enumerate(events) if _when(e["at"]) <= since]
            events = events[opening[-1]:] if opening else events
            if events[-1]["event"] == "deleted" and _when(events[-1]["at"]) <= since:
                continue
            found.append({"vm_id": vm_id, "container_id": entry["container_id"],
                          "events": copy.deepcopy(events)})
        return found

    def inventory(self) -> dict[str, list[dict[str, Any]]]:
        return {table: [public(o) for o in self.data[table].values()] for table in RESOURCES}

    # -- operation history ---------------------------------------------------
    def prune_operations(self, horizon: datetime) -> list[tuple[str, str]]:
        """Forget every operation that finished before ``horizon``, with its idempotency
        key; the ``(table, id)`` pairs removed, for the journal.

        Operations are kept in the order they were accepted, so the walk stops at the
        first one accepted at or after ``horizon``: a call costs what it removes, plus
        the few older ones kept because they are still running or finished after it."""
        expired = []
        for op_id, op in self.operations.items():
            if _when(op["created_at"]) >= horizon:
                break
            finished = op.get("finished_at")
            if op["state"] != OperationState.RUNNING and finished and _when(finished) < horizon:
                expired.append(op_id)
        removed = []
        for op_id in expired:
            op = self.operations.pop(op_id)
            removed.append(("operations", op_id))
            key = op.get("key")
            if key and self.keys.get(key, {}).get("operation") == op_id:
                del self.keys[key]
                removed.append(("keys", key))
        return removed


class Store:
    """Loads the state document and saves its changes as journal lines (or keeps nothing)."""

    FILENAME = "state.json"
    JOURNAL = "journal.jsonl"
    # The journal is folded into a new snapshot once it is this large, or
    # larger than twice the snapshot.
    COMPACT_BYTES = 4 * 1024 * 1024
    # Also compare the whole tables at every save and fail if the ``Table``s missed a
    # change (stampsim's tests turn it on, for their stamp processes too, through the
    # environment; it costs what the tracking saves).
    CHECK_TRACKING = os.environ.get("STAMPSIM_CHECK_JOURNAL") == "1"

    def __init__(self, data_dir: str | os.PathLike[str] | None, *, durable: bool = True) -> None:
        self.dir = Path(data_dir) if data_dir is not None else None
        self.durable = durable
        self._seen: dict[str, dict[str, Any]] = {}
        self._snapshot_bytes = 0
        self._journal: Any = None
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path | None:
        return self.dir / self.FILENAME if self.dir is not None else None

    @property
    def journal_path(self) -> Path | None:
        return self.dir / self.JOURNAL if self.dir is not None else None

    def load(self) -> dict[str, Any] | None:
        if self.path is None:
            return None
        data: dict[str, Any] | None = None
        if self.path.exists():
            raw = self.path.read_bytes()
            self._snapshot_bytes = len(raw)
            data = json.loads(raw)
            if data.get("schema") != SCHEMA_VERSION:
                raise ValueError(f"{self.path}: unsupported state schema {data.get('schema')!r}")
        assert self.journal_path is not None
        if self.journal_path.exists():
            data = data if data is not None else {"schema": SCHEMA_VERSION}
            self._replay(data)
        return data

    def _replay(self, data: dict[str, Any]) -> None:
        assert self.journal_path is not None
        raw = self.journal_path.read_bytes()
        lines = raw.split(b"\n")
        if not raw.endswith(b"\n"):
            lines.pop()  # torn by a crash in the middle of the last append: never answered
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                change = json.loads(line)
            except ValueError:
                raise ValueError(f"{self.journal_path}:{number}: unreadable journal line") from None
            for table, obj_id, record in change:
                rows = data.setdefault(table, {})
                if record is None:
                    rows.pop(obj_id, None)
                else:
                    rows[obj_id] = record

    def save(
        self,
        data: dict[str, Any],
        *,
        touched: Iterable[tuple[str, str]] = (),
        full: bool = False,
    ) -> None:
        """Persist what changed since the last save.

        Of the inventory and history tables, the records noted by their ``Table``
        (looked up or written since the last save) are compared with what was saved
        last, and the changed ones written; ``operations`` and ``keys`` are written
        only for the ``(table, id)`` pairs named in ``touched``.  ``full`` writes a
        whole new snapshot instead (after a reset).
        """
        noted = {table: _drain(data.get(table)) for table in JOURNALED}
        if self.dir is None:
            return
        if full or not self._seen:
            self._snapshot(data)
            return
        changes: list[list[Any]] = []
        for table in JOURNALED:
            rows, seen = data.get(table, {}), self._seen.setdefault(table, {})
            ids = noted[table] if noted[table] is not None else {*rows, *seen}
            for obj_id in ids:
                record = dict.get(rows, obj_id)  # not ``rows.get``: that would note it again
                if record is None:
                    if obj_id in seen:
                        changes.append([table, obj_id, None])
                elif seen.get(obj_id) != record:
                    changes.append([table, obj_id, record])
        if self.CHECK_TRACKING:
            self._check_tracking(data, changes)
        for table, obj_id in touched:
            changes.append([table, obj_id, data.get(table, {}).get(obj_id)])
        if not changes:
            return
        line = json.dumps(changes, separators=(",", ":")).encode() + b"\n"
        for table, obj_id, record in json.loads(line):  # copies of what was written
            if table in self._seen:
                if record is None:
                    self._seen[table].pop(obj_id, None)
                else:
                    self._seen[table][obj_id] = record
        journal = self._open_journal()
        journal.write(line)
        journal.flush()
        if self.durable:
            os.fsync(journal.fileno())
        if journal.tell() > max(self.COMPACT_BYTES, 2 * self._snapshot_bytes):
            self._snapshot(data)

    def _check_tracking(self, data: dict[str, Any], changes: list[list[Any]]) -> None:
        """What a comparison of the whole tables finds changed must be in ``changes``."""
        found = {(table, obj_id) for table, obj_id, _ in changes}
        for table in JOURNALED:
            rows, seen = data.get(table, {}), self._seen.get(table, {})
            for obj_id in {*rows, *seen}:
                if dict.get(rows, obj_id) != seen.get(obj_id) and (table, obj_id) not in found:
                    raise AssertionError(
                        f"{table} {obj_id!r} changed without being noted by its Table"
                    )

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def _open_journal(self) -> Any:
        if self._journal is None:
            assert self.journal_path is not None
            self._journal = self.journal_path.open("ab")
        return self._journal

    def _snapshot(self, data: dict[str, Any]) -> None:
        """Write the whole document as the new snapshot, then empty the journal."""
        assert self.dir is not None and self.journal_path is not None
        raw = json.dumps(data, separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
                fh.flush()
                if self.durable:
                    os.fsync(fh.fileno())
            os.replace(tmp, self.dir / self.FILENAME)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self._snapshot_bytes = len(raw)
        self.close()
        with self.journal_path.open("wb") as fh:  # what it held is in the snapshot now
            if self.durable:
                os.fsync(fh.fileno())
        self._seen = {table: copy.deepcopy(dict(data.get(table, {}))) for table in JOURNALED}


def _drain(rows: Any) -> set[str] | None:
    """The ids a ``Table`` noted since the last save; ``None`` for a plain dict (which
    is then compared whole)."""
    return rows.drain() if isinstance(rows, Table) else None
