"""Fault injection knobs: latency, failures and crashes.

Two kinds of injected failure, both keyed by operation kind (``vm.create``,
``network.create``, ... or ``*`` for every kind):

``fail_rate`` / ``fail_next``
    The *call* answers ``503 injected-failure`` before anything is recorded:
    no operation, the idempotency key stays free, so retrying the same call
    with the same key can succeed.  This is the transient failure a driver
    retries.
``fail_op_rate`` / ``fail_op_next``
    The call is accepted (202) and the *operation* ends ``failed`` with
    ``injected-failure`` before it changes anything.  The key stays bound to
    the failed operation; a retry with the same key sees the same failure.

``fail_status`` is the status those refused calls answer (503 by default; 500 makes the
stamp answer like a controller with a bug).  ``hang_ms`` makes every call but the
admin ones wait that long before it is even looked at (nothing is recorded meanwhile):
a stamp that hangs, as seen by a client whose timeout is shorter.

``fail_next`` counts are consumed one per matching call.  ``crash_after N``
makes the process exit hard after N more accepted mutating operations (see
``server.py`` for when exactly).  Faults are per process: they are not stored
with the state and come back to the command-line values on ``admin/reset``.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from .errors import bad_request

__all__ = ["Faults"]

_FIELDS = ("latency_ms", "fail_rate", "fail_next", "fail_op_rate", "fail_op_next", "crash_after",
           "fail_status", "hang_ms")
_FAIL_STATUSES = (500, 502, 503, 504)


class Faults:
    """Thread-safe fault settings of one simulated stamp."""

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        fail_rate: dict[str, float] | None = None,
        fail_next: dict[str, int] | None = None,
        fail_op_rate: dict[str, float] | None = None,
        fail_op_next: dict[str, int] | None = None,
        crash_after: int | None = None,
        seed: int | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.latency_ms = 0
        self.fail_rate: dict[str, float] = {}
        self.fail_next: dict[str, int] = {}
        self.fail_op_rate: dict[str, float] = {}
        self.fail_op_next: dict[str, int] = {}
        self.crash_after: int | None = None
        self.fail_status = 503
        self.hang_ms = 0
        self.update(
            {
                "latency_ms": latency_ms,
                "fail_rate": fail_rate or {},
                "fail_next": fail_next or {},
                "fail_op_rate": fail_op_rate or {},
                "fail_op_next": fail_op_next or {},
                "crash_after": crash_after,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency_ms": self.latency_ms,
                "fail_rate": dict(self.fail_rate),
                "fail_next": dict(self.fail_next),
                "fail_op_rate": dict(self.fail_op_rate),
                "fail_op_next": dict(self.fail_op_next),
                "crash_after": self.crash_after,
                "fail_status": self.fail_status,
                "hang_ms": self.hang_ms,
            }

    def update(self, payload: dict[str, Any]) -> None:
        """Replace the fields present in ``payload`` (validated first, all or nothing)."""
        unknown = set(payload) - set(_FIELDS)
        if unknown:
            raise bad_request(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        changes: dict[str, Any] = {}
        if "latency_ms" in payload:
            changes["latency_ms"] = _non_negative_int(payload["latency_ms"], "latency_ms")
        for name in ("fail_rate", "fail_op_rate"):
            if name in payload:
                changes[name] = _rates(payload[name], name)
        for name in ("fail_next", "fail_op_next"):
            if name in payload:
                changes[name] = _counts(payload[name], name)
        if "hang_ms" in payload:
            changes["hang_ms"] = _non_negative_int(payload["hang_ms"], "hang_ms")
        if "fail_status" in payload:
            if payload["fail_status"] not in _FAIL_STATUSES:
                raise bad_request(f"fail_status must be one of {_FAIL_STATUSES}")
            changes["fail_status"] = payload["fail_status"]
        if "crash_after" in payload:
            value = payload["crash_after"]
            changes["crash_after"] = (
                None if value is None else _non_negative_int(value, "crash_after")
            )
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)

    def call_fails(self, kind: str) -> bool:
        """Should this call answer 503?  Consumes a ``fail_next`` count."""
        with self._lock:
            return self._draw(kind, self.fail_rate, self.fail_next)

    def hang_seconds(self) -> float:
        """How long a call waits before it is handled (``hang_ms``)."""
        with self._lock:
            return self.hang_ms / 1000

    def operation_fails(self, kind: str) -> bool:
        """Should this accepted operation fail?  Consumes a ``fail_op_next`` count."""
        with self._lock:
            return self._draw(kind, self.fail_op_rate, self.fail_op_next)

    def count_operation(self) -> bool:
        """Count one accepted operation; True when the crash is due."""
        with self._lock:
            if self.crash_after is None:
                return False
            self.crash_after -= 1
            if self.crash_after <= 0:
                self.crash_after = None
                return True
            return False

    def _draw(self, kind: str, rates: dict[str, float], counts: dict[str, int]) -> bool:
        for name in (kind, "*"):
            if counts.get(name, 0) > 0:
                counts[name] -= 1
                if counts[name] == 0:
                    del counts[name]
                return True
        rate = rates.get(kind, rates.get("*", 0.0))
        return rate > 0 and self._rng.random() < rate


def _non_negative_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_request(f"{name} must be a non-negative integer")
    return value


def _rates(value: Any, name: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise bad_request(f"{name} must be an object of kind: rate")
    rates = {}
    for kind, rate in value.items():
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise bad_request(f"{name}[{kind!r}] must be a number between 0 and 1")
        if rate:
            rates[str(kind)] = float(rate)
    return rates


def _counts(value: Any, name: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise bad_request(f"{name} must be an object of kind: count")
    counts = {}
    for kind, count in value.items():
        count = _non_negative_int(count, f"{name}[{kind!r}]")
        if count:
            counts[str(kind)] = count
    return counts
