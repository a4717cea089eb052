"""Calls from one simulated stamp to another (replication traffic).

``PeerClient`` speaks the stampsim API with the client protocol every client of a stamp
shares (``protocol``: headers, tries, operation polling, error decoding), over a
transport ``send``. ``HttpPeers`` sends over HTTP with the standard library; the
in-process memory driver plugs in its own transport.

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

from . import protocol
from .errors import ApiError, ErrorCode

__all__ = ["HttpPeers", "PeerClient", "PeerUnreachable", "http_request"]

# Peers answer at once unless latency is injected: look again soon, and often.
_POLLING = protocol.Polling(first=0.01, growth=2.0, longest=0.25)


class PeerUnreachable(protocol.NoAnswer):
    """The peer did not answer (connection refused, timeout, DNS...)."""


class PeerClient:
    """The stampsim client protocol over a transport ``send``."""

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
        """One try: ``(status, decoded JSON)``, or ``PeerUnreachable``."""
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

        def fetch(operation_path: str) -> dict[str, Any]:
            return self._request(endpoint, token, "GET", operation_path, None, None, deadline)[1]

        try:
            ended = protocol.wait_for(
                payload["operation"], fetch, deadline=deadline, polling=_POLLING
            )
        except protocol.StillRunning as exc:
            raise ApiError(
                504,
                ErrorCode.TARGET_UNREACHABLE,
                f"target stamp {endpoint}: operation {exc.operation['id']} did not finish in time",
            ) from None
        try:
            return protocol.result_of(ended)
        except ApiError as exc:
            raise _relayed(exc) from None

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
        def send(timeout: float) -> tuple[int, dict[str, Any]]:
            return self.send(endpoint, token, method, path, body, key, timeout)

        try:
            status, payload = protocol.exchange(
                send, deadline=deadline, attempts=self.attempts, backoff=self.backoff
            )
        except protocol.Unanswered as exc:
            raise ApiError(
                502,
                ErrorCode.TARGET_UNREACHABLE,
                f"target stamp {endpoint} unreachable: {exc.reason}",
            ) from None
        if status >= 400:
            raise _relayed(protocol.refusal(status, payload))
        return status, payload


def _relayed(refused: ApiError) -> ApiError:
    """The peer's refusal, as this stamp reports it: its status and code, said of it."""
    return ApiError(
        refused.status, refused.code or ErrorCode.INTERNAL, f"target stamp: {refused.detail}"
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
        headers = protocol.request_headers(token=token, key=key)
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
        headers = {**headers, protocol.CONTENT_TYPE: protocol.JSON}
    try:
        connection.request(method, base.path.rstrip("/") + path, body=data, headers=headers)
        response = connection.getresponse()
        return protocol.decode_answer(response.status, response.read())
    except (OSError, http.client.HTTPException) as exc:
        raise PeerUnreachable(str(exc) or type(exc).__name__) from None
    finally:
        connection.close()

