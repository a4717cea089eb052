"""Calls from one simulated stamp to another (replication traffic).

``PeerClient`` speaks the stampsim API: it sends a request with an
idempotency key, retries on connection errors and 5xx, and for a 202 polls
the operation until it ends.  ``HttpPeers`` sends over HTTP with the standard
library; the in-process memory driver plugs in its own transport.

Errors come back as ``ApiError``: an unreachable peer is
``502 target-unreachable``; a refusal by the peer keeps the peer's status and
code, with the detail prefixed by ``target stamp``.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from typing import Any

from .errors import ApiError, ErrorCode

__all__ = ["HttpPeers", "PeerClient", "PeerUnreachable", "http_request"]


class PeerUnreachable(Exception):
    """The peer did not answer (connection refused, timeout, DNS...)."""


class PeerClient:
    """Request + retry + operation polling, over a transport ``send``."""

    def __init__(self, *, timeout: float = 10.0, attempts: int = 3, backoff: float = 0.1) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff

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
        raise NotImplementedError

    def call(
        self,
        endpoint: str,
        token: str | None,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """The answer of a GET, or the result of the operation a mutating call started."""
        deadline = time.monotonic() + self.timeout
        status, payload = self._request(endpoint, token, method, path, body, key, deadline)
        if status != 202:
            return payload
        operation = payload["operation"]
        delay = 0.01
        while operation["state"] == "running":
            if time.monotonic() + delay > deadline:
                raise ApiError(
                    504,
                    ErrorCode.TARGET_UNREACHABLE,
                    f"target stamp {endpoint}: operation {operation['id']} did not finish in time",
                )
            time.sleep(delay)  # polling interval, bounded by the deadline above
            delay = min(delay * 2, 0.25)
            _, answer = self._request(
                endpoint, token, "GET", f"/v1/operations/{operation['id']}", None, None, deadline
            )
            operation = answer["operation"]
        if operation["state"] == "failed":
            error = operation["error"] or {}
            raise ApiError(
                int(error.get("status", 500)),
                error.get("code", ErrorCode.INTERNAL),
                f"target stamp: {error.get('detail', 'operation failed')}",
            )
        return operation["result"]

    def _request(
        self,
        endpoint: str,
        token: str | None,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        key: str | None,
        deadline: float,
    ) -> tuple[int, dict[str, Any]]:
        reason = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                status, payload = self.send(endpoint, token, method, path, body, key, remaining)
            except PeerUnreachable as exc:
                reason = str(exc)
            else:
                if status < 500:
                    if status >= 400:
                        raise ApiError(
                            status,
                            payload.get("error", ErrorCode.INTERNAL),
                            f"target stamp: {payload.get('detail', 'request refused')}",
                        )
                    return status, payload
                reason = f"HTTP {status} {payload.get('error', '')}".strip()
            if attempt < self.attempts:
                time.sleep(
                    min(self.backoff * 2 ** (attempt - 1), max(deadline - time.monotonic(), 0))
                )
        raise ApiError(
            502, ErrorCode.TARGET_UNREACHABLE, f"target stamp {endpoint} unreachable: {reason}"
        )


class HttpPeers(PeerClient):
    """Talks to peers over HTTP with ``http.client`` (nothing outside the standard library)."""

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
        headers = {"Accept": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return http_request(endpoint, method, path, body, headers, timeout)


def http_request(
    endpoint: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    timeout: float,
) -> tuple[int, dict[str, Any]]:
    """One JSON request to ``endpoint`` + ``path``; ``PeerUnreachable`` if no answer."""
    base = urllib.parse.urlsplit(endpoint)
    if base.scheme not in {"http", "https"} or not base.hostname:
        raise PeerUnreachable(f"{endpoint!r} is not an http(s) endpoint")
    connection_class = (
        http.client.HTTPSConnection if base.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(base.hostname, base.port, timeout=timeout)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers = {**headers, "Content-Type": "application/json"}
    try:
        connection.request(method, base.path.rstrip("/") + path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, _decode(response.read())
    except (OSError, http.client.HTTPException) as exc:
        raise PeerUnreachable(str(exc) or type(exc).__name__) from None
    finally:
        connection.close()


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw or b"{}")
    except ValueError:
        return {"error": ErrorCode.INTERNAL, "detail": "answer is not JSON"}
    return payload if isinstance(payload, dict) else {}
