"""``SimulatedDriver``: drives a stampsim (or anything speaking its API) over HTTP."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from typing import Any

import certifi
import httpx

from stampsim import protocol

from .stampapi import StampApiDriver, TransportError

__all__ = ["SimulatedDriver"]


class SimulatedDriver(StampApiDriver):
    """HTTP with ``httpx``: keep-alive connections, connect and read timeouts.

    ``credentials["token"]``, when present, is sent as a bearer token.
    ``connect_timeout`` caps each connection attempt (never above ``timeout``).
    """

    kind = "simulated"
    reusable = True  # one client for many calls: its connections are kept alive

    def __init__(
        self,
        name: str,
        endpoint: str,
        credentials: Mapping[str, Any] | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        connect_timeout: float = 3.0,
    ) -> None:
        super().__init__(
            name, endpoint, credentials, timeout=timeout, retries=retries, backoff=backoff
        )
        self.connect_timeout = min(connect_timeout, timeout)
        self._client = httpx.Client(
            base_url=endpoint.rstrip("/"), follow_redirects=False, verify=_tls_context()
        )

    def close(self) -> None:
        self._client.close()

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
        limits = httpx.Timeout(timeout, connect=min(self.connect_timeout, timeout))
        try:
            response = self._client.request(
                method,
                path,
                params=params,
                json=dict(body) if body is not None else None,
                headers=dict(headers),
                timeout=limits,
            )
        except httpx.TransportError as exc:
            raise TransportError(_describe(exc)) from None
        # Not a stampsim answering (a proxy page, another service): retried, then unreachable.
        return protocol.decode_answer(response.status_code, response.content)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle costs more CPU
    than a whole job, so a driver built for every job must not load it again."""
    return ssl.create_default_context(cafile=certifi.where())


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out waiting for an answer"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc)
        return "connection refused" if "refused" in text.lower() else f"cannot connect ({text})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
