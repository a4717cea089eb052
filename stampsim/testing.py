"""Run stampsim as a real process, for tests and local tooling.

``StampProcess`` starts ``python -m stampsim`` on a free port,
waits until ``/v1/health`` answers (with a deadline, never a fixed sleep),
and stops, kills or restarts it on the same data directory::

    stamp = StampProcess("stamp-a", tmp_path / "a").start()
    ...
    stamp.kill()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import protocol
from .peers import PeerUnreachable, http_request

__all__ = ["StampProcess", "free_port"]

_PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the tree this stampsim is in


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (closed again before returning)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class StampProcess:
    """One stampsim process; ``args`` are extra command-line flags."""

    def __init__(
        self,
        name: str,
        data_dir: str | os.PathLike[str],
        *,
        args: Sequence[str] = (),
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.name = name
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.token = token
        self.host = host
        self._port_chosen = port is None
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "stampsim.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self, extra_args: Sequence[str] = ()) -> list[str]:
        cmd = [sys.executable, "-m", "stampsim", "--host", self.host]
        cmd += ["--port", str(self.port), "--name", self.name, "--data", str(self.data_dir)]
        if self.token:
            cmd += ["--token", self.token]
        return cmd + self.args + list(extra_args)

    def start(self, *, extra_args: Sequence[str] = (), timeout: float = 15.0) -> StampProcess:
        """Start and wait until healthy; ``extra_args`` apply to this start only."""
        if self.alive:
            raise RuntimeError(f"stampsim {self.name!r} is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self._spawn(extra_args)
            try:
                self.wait_ready(timeout)
                return self
            except RuntimeError:
                # Another process took the free port between choosing and binding it.
                if not self._port_chosen or "in use" not in self.log_tail() or attempt == 2:
                    raise
                self.log_path.write_bytes(b"")
                self.port = free_port(self.host)
        return self

    def _spawn(self, extra_args: Sequence[str]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")])
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(extra_args),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=_PROJECT_ROOT,
            )

    def wait_ready(self, timeout: float = 15.0) -> dict[str, Any]:
        """Poll ``/v1/health`` until it answers 200; fail early if the process dies."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"stampsim {self.name!r} exited with {code}: {self.log_tail()}")
            try:
                status, health = self.request("GET", "/v1/health", timeout=0.5)
            except PeerUnreachable as exc:
                last_error = str(exc)
            else:
                if status == 200:
                    return health
                last_error = f"HTTP {status}: {health}"
            time.sleep(0.02)  # polling interval, bounded by the deadline
        raise TimeoutError(f"stampsim {self.name!r} not healthy after {timeout}s: {last_error}")

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        timeout: float = 5.0,
    ) -> tuple[int, Any]:
        """A raw API call with the standard library: ``(status, decoded JSON)``."""
        headers = protocol.request_headers(token=self.token, key=key or None)
        return http_request(self.url, method, path, body, headers, timeout)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the process to end by itself; its exit status."""
        if self.process is None:
            raise RuntimeError("not started")
        return self.process.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it does not go."""
        if not self.alive:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to tidy up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self, *, extra_args: Sequence[str] = (), timeout: float = 15.0) -> StampProcess:
        self.kill()
        return self.start(extra_args=extra_args, timeout=timeout)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
