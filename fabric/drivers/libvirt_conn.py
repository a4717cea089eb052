"""The libvirt driver's connections (one per URI per process) and its error mapping."""

from __future__ import annotations

import atexit
import contextlib
import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import libvirt

from .base import (
    Conflict,
    ConflictCode,
    DriverError,
    InvalidRequest,
    NotFound,
    OperationFailed,
    StampUnreachable,
    Unauthorized,
    Unsupported,
)

__all__ = ["INVALID", "STATE", "UNSUPPORTED", "error_for", "forget", "lock", "open_connection",
           "translated"]

# libvirt's error codes (virterror.h) and what they mean to the portal
NOT_FOUND = {libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_NETWORK,
             libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT, libvirt.VIR_ERR_NO_STORAGE_VOL,
             libvirt.VIR_ERR_NO_STORAGE_POOL}
STATE = {libvirt.VIR_ERR_OPERATION_FAILED, libvirt.VIR_ERR_OPERATION_INVALID}
EXISTS = {libvirt.VIR_ERR_DOM_EXIST, libvirt.VIR_ERR_NETWORK_EXIST}
UNSUPPORTED = {libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_OPERATION_UNSUPPORTED}
INVALID = {libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_XML_ERROR,
           libvirt.VIR_ERR_CONFIG_UNSUPPORTED}
AUTH = {libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_AUTH_CANCELLED,
        libvirt.VIR_ERR_AUTH_UNAVAILABLE}
UNREACHABLE = {libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC,
               libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN,
               libvirt.VIR_ERR_OPERATION_TIMEOUT, libvirt.VIR_ERR_AGENT_UNRESPONSIVE}

# libvirt prints every error on stderr unless a handler takes them; ours are exceptions.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


# -- one connection per URI per process ---------------------------------------------------
_connections: dict[tuple[str, str], libvirt.virConnect] = {}
_locks: dict[str, threading.RLock] = {}
_registry_lock = threading.Lock()


def open_connection(uri: str, credentials: Mapping[str, Any]) -> libvirt.virConnect:
    username = credentials.get("username") or ""
    with _registry_lock:
        conn = _connections.get((uri, username))
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                if conn.isAlive():
                    return conn
            del _connections[(uri, username)]
        if username or credentials.get("password"):
            conn = libvirt.openAuth(uri, _auth(username, credentials.get("password") or ""), 0)
        else:
            conn = libvirt.open(uri)
        _connections[(uri, username)] = conn
        return conn


def _auth(username: str, password: str) -> list[Any]:
    def answer(credentials: list[list[Any]], _data: object) -> int:
        for credential in credentials:
            if credential[0] == libvirt.VIR_CREDAUTHNAME:
                credential[4] = username
            elif credential[0] == libvirt.VIR_CRED_PASSPHRASE:
                credential[4] = password
        return 0

    return [[libvirt.VIR_CREDAUTHNAME, libvirt.VIR_CRED_PASSPHRASE], answer, None]


def forget(uri: str | None = None) -> None:
    """Close this process's connection to ``uri`` (every URI when None)."""
    with _registry_lock:
        for cached in [k for k in _connections if uri is None or k[0] == uri]:
            conn = _connections.pop(cached)
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()


# Closed before the interpreter tears libvirt's module down: a connection left to its
# finaliser then fails on the module that is already gone.
atexit.register(forget)


def lock(uri: str) -> threading.RLock:
    """One lock per URI: a process's calls read and write one host's metadata in turn."""
    with _registry_lock:
        return _locks.setdefault(uri, threading.RLock())


def error_for(stamp: str, uri: str, operation: str, exc: libvirt.libvirtError) -> DriverError:
    """libvirt's error in ``operation`` as a ``DriverError`` (see the codes above)."""
    code, message = exc.get_error_code(), exc.get_error_message() or str(exc)
    detail = f"{message} (libvirt error {code})"
    if code in NOT_FOUND:
        return NotFound(stamp, operation, detail, code="not-found")
    if code in STATE:
        return Conflict(stamp, operation, detail, code=ConflictCode.STATE)
    if code in EXISTS:
        return Conflict(stamp, operation, detail, code=ConflictCode.EXISTS)
    if code in UNSUPPORTED:
        return Unsupported(stamp, operation, f"the hypervisor cannot do this: {detail}")
    if code in AUTH:
        return Unauthorized(stamp, operation, detail)
    if code in UNREACHABLE:
        forget(uri)  # a broken connection is opened again by the next call
        return StampUnreachable(stamp, operation, detail)
    if code in INVALID:
        return InvalidRequest(stamp, operation, detail)
    return OperationFailed(stamp, operation, detail)


F = TypeVar("F", bound=Callable[..., Any])


def translated(operation: str) -> Callable[[F], F]:
    """A driver method whose libvirt errors in ``operation`` become ``DriverError``s, run
    under the URI's lock; a ``key`` it is given must be a non-empty string."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if "key" in kwargs and (not isinstance(kwargs["key"], str) or not kwargs["key"]):
                raise ValueError(f"{operation}: an idempotency key (non-empty string) is required")
            try:
                with lock(self.endpoint):
                    return fn(self, *args, **kwargs)
            except libvirt.libvirtError as exc:
                raise self._error(operation, exc) from None

        return wrapper  # type: ignore[return-value]

    return wrap
