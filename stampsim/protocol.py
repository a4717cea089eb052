"""The client side of the stampsim API, shared by every client of a stamp: the portal's
driver (``fabric.drivers.stampapi``, over httpx or in process) and a stamp calling its
peer for replication (``peers``, over ``http.client`` or in process).

One call goes: the headers (bearer token, idempotency key); tries with exponential
backoff, again only when there was no answer or a 5xx, never a 4xx, with the same key
each time so a retried call never acts twice; for a ``202``, the operation polled until
it ends, all within the call's one deadline; then its result, or the refusal decoded as
an ``ApiError``. Transports only move bytes (``send(timeout)``), and each client turns
what cannot be done into its own errors: the driver into ``DriverError``s, a stamp into
``ApiError``s about its peer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ApiError
from .state import OperationState

__all__ = [
    "ACCEPT",
    "AUTHORIZATION",
    "BAD_ANSWER",
    "CONTENT_TYPE",
    "IDEMPOTENCY_KEY",
    "JSON",
    "NoAnswer",
    "Polling",
    "StillRunning",
    "Unanswered",
    "bearer",
    "decode_answer",
    "describe",
    "exchange",
    "operation_path",
    "refusal",
    "request_headers",
    "result_of",
    "wait_for",
]

ACCEPT = "Accept"
AUTHORIZATION = "Authorization"
CONTENT_TYPE = "Content-Type"
IDEMPOTENCY_KEY = "Idempotency-Key"  # required on every mutating call
JSON = "application/json"
# A client's code, not a stamp's: the answer was not the API's JSON (a proxy's page...).
BAD_ANSWER = "bad-answer"
# The shortest time a try gets, even at the deadline: a last try must be able to answer.
_SHORTEST_TRY = 0.05


def bearer(token: str) -> str:
    """The ``Authorization`` value for ``token``; the server compares against it too."""
    return f"Bearer {token}"


def request_headers(*, token: str | None = None, key: str | None = None) -> dict[str, str]:
    headers = {ACCEPT: JSON}
    if key is not None:
        headers[IDEMPOTENCY_KEY] = key
    if token:
        headers[AUTHORIZATION] = bearer(token)
    return headers


def operation_path(operation_id: str) -> str:
    return f"/v1/operations/{operation_id}"


def decode_answer(status: int, raw: bytes) -> tuple[int, dict[str, Any]]:
    """An answer's status and JSON object. What is not JSON did not come from a stamp:
    it reads as a 502, so it is retried and then counts as no answer."""
    try:
        payload = json.loads(raw or b"{}")
    except ValueError:
        return 502, {"error": BAD_ANSWER, "detail": f"HTTP {status}, not JSON"}
    return status, payload if isinstance(payload, dict) else {}


def describe(payload: Any) -> str:
    """An error answer in a few words, for the reason a call gave up: "code: detail"."""
    if isinstance(payload, Mapping) and payload.get("error"):
        return f"{payload['error']}: {payload.get('detail', '')}".rstrip(": ")
    return "error"


def refusal(status: int, payload: Any) -> ApiError:
    """A refusal as an ``ApiError``: an error answer (``{"error", "detail"}``) with its
    status, or a failed operation's ``error`` (``{"code", "detail", "status"}``). The
    code is "" when the answer names none; the detail is then "HTTP <status>"."""
    payload = payload if isinstance(payload, Mapping) else {}
    code = str(payload.get("error") or payload.get("code") or "")
    return ApiError(status, code, str(payload.get("detail") or f"HTTP {status}"))


# -- tries ---------------------------------------------------------------------------------
class NoAnswer(Exception):
    """One try got no answer (connection refused, timed out...); the message says why."""


class Unanswered(Exception):
    """Every try got no answer or a 5xx: ``reason`` is the last one's."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(f"{reason} after {attempts} attempt{'s' if attempts != 1 else ''}")
        self.reason = reason
        self.attempts = attempts


def exchange(
    send: Callable[[float], tuple[int, Any]], *, deadline: float, attempts: int, backoff: float
) -> tuple[int, Any]:
    """``send(timeout)`` until an answer below 500, at most ``attempts`` times, pausing
    ``backoff`` then twice as long each time; ``Unanswered`` when the tries are used up
    or the next pause would pass ``deadline`` (``time.monotonic()``). ``send`` sends the
    same request each time and raises ``NoAnswer`` when it got none."""
    attempt, reason = 0, "no answer"
    while True:
        attempt += 1
        try:
            status, payload = send(max(deadline - time.monotonic(), _SHORTEST_TRY))
        except NoAnswer as exc:
            reason = str(exc)
        else:
            if status < 500:
                return status, payload
            reason = f"HTTP {status} {describe(payload)}"
        pause = backoff * 2 ** (attempt - 1)
        if attempt >= attempts or time.monotonic() + pause >= deadline:
            raise Unanswered(reason, attempt)
        time.sleep(pause)  # exponential backoff between tries


# -- operations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Polling:
    """How often a client looks at a running operation: ``first``, then ``growth`` times
    longer each time, never longer than ``longest`` (seconds)."""

    first: float
    growth: float
    longest: float

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * self.growth, self.longest)


class StillRunning(Exception):
    """The deadline passed with the operation still running: calling again with the same
    key waits for the same operation."""

    def __init__(self, operation: Mapping[str, Any]) -> None:
        super().__init__(f"operation {operation['id']} still running")
        self.operation = operation


def wait_for(
    operation: Mapping[str, Any],
    fetch: Callable[[str], Mapping[str, Any]],
    *,
    deadline: float,
    polling: Polling,
) -> Mapping[str, Any]:
    """The operation of a ``202`` once it has ended, fetched again (``fetch(path)``, the
    answer of a GET) while it runs; ``StillRunning`` once ``deadline`` has passed."""
    delays = polling.delays()
    while operation["state"] == OperationState.RUNNING:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StillRunning(operation)
        time.sleep(min(next(delays), remaining / 2))  # polling interval, within the deadline
        operation = fetch(operation_path(operation["id"]))["operation"]
    return operation


def result_of(operation: Mapping[str, Any]) -> Any:
    """An ended operation's result; its error as an ``ApiError`` if it did not succeed."""
    if operation["state"] == OperationState.SUCCEEDED:
        return operation["result"]
    error = operation.get("error") or {}
    raise refusal(int(error.get("status", 500)), error)
