"""Errors the simulated fabric reports, and the codes it uses for them.

Every error travels as JSON ``{"error": code, "detail": text}`` with an HTTP
status.  The same code appears in a failed operation's ``error`` field, so a
client handles a refusal the same way whether it came back at once (a 4xx
answer) or later (an operation that ended ``failed``).
"""

from __future__ import annotations

import enum

__all__ = ["ApiError", "ErrorCode", "bad_request", "conflict", "not_found"]


class ErrorCode(enum.StrEnum):
    """Machine-readable error codes (the ``error`` field)."""

    INVALID = "invalid"  # 400: the request is malformed or a value is out of range
    KEY_REQUIRED = "key-required"  # 400: a mutating call without Idempotency-Key
    UNAUTHORIZED = "unauthorized"  # 401: missing or wrong bearer token
    NOT_FOUND = "not-found"  # 404: unknown object or route
    METHOD_NOT_ALLOWED = "method-not-allowed"  # 405
    CAPACITY = "capacity"  # 409: the stamp has not enough free capacity
    STATE = "state"  # 409: wrong power state / replication state
    IN_USE = "in-use"  # 409: the object still holds or serves others
    EXISTS = "exists"  # 409: only one may exist (gateway, replication)
    CIDR_OVERLAP = "cidr-overlap"  # 409: network overlaps one in the container
    ADDRESS_IN_USE = "address-in-use"  # 409: external or VM address taken
    IDEMPOTENCY_MISMATCH = "idempotency-mismatch"  # 409: key reused for another call
    REPLICA_MISSING = "replica-missing"  # 409: the replica on the target is gone
    INJECTED_FAILURE = "injected-failure"  # 503 answer or failed operation (faults)
    INTERRUPTED = "interrupted"  # failed operation: the stamp restarted under it
    TARGET_UNREACHABLE = "target-unreachable"  # failed operation: peer stamp down
    INTERNAL = "internal"  # 500: a bug in the simulator


class ApiError(Exception):
    """An error with its HTTP status; raised by the model, rendered by the server."""

    def __init__(self, status: int, code: ErrorCode | str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = str(code)
        self.detail = detail

    def payload(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}

    def as_operation_error(self) -> dict[str, object]:
        return {"code": self.code, "detail": self.detail, "status": self.status}

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.detail!r})"


def bad_request(detail: str) -> ApiError:
    return ApiError(400, ErrorCode.INVALID, detail)


def not_found(what: str, obj_id: object) -> ApiError:
    return ApiError(404, ErrorCode.NOT_FOUND, f"{what} {obj_id!r} not found")


def conflict(code: ErrorCode, detail: str) -> ApiError:
    return ApiError(409, code, detail)
