"""The processes a benchmark runs against: the embedded broker (when the settings use
it), stampsim, a Celery worker and gunicorn, each logging to a file of the run's directory
and all stopped when the stack closes.

The worker and the web server run in process groups of their own: stopping the group
stops gunicorn's and Celery's pool children with them, and a Ctrl-C at the terminal
reaches the benchmark alone, which then stops them in order.
"""

import atexit
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from django.conf import settings

from portal import broker, processes
from portal.bench.cpu import Meter
from stampsim.testing import StampProcess, free_port

__all__ = ["POOLS", "Child", "Stack", "StackFailed", "pool_concurrency"]

# The worker pools a benchmark can run: prefork with the worker's processes, or threads,
# four times as many in one process (as the portal runs the stamps' queues).
POOLS = ("prefork", "threads")


def pool_concurrency(pool: str, processes: int) -> int:
    """The worker's concurrency in ``pool`` for ``processes`` prefork processes."""
    return processes if pool == "prefork" else 4 * processes


BASE_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0  # seconds for a process to answer after it was started


class StackFailed(RuntimeError):
    """A process of the stack did not start or died."""


class Child:
    """One process of the stack, in its own process group."""

    def __init__(self, name: str, command: list[str], log_path: Path, env: dict[str, str]):
        self.name = name
        self.command = command
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen | None = None
        self.ready: Callable[[float], bool] | None = None  # waits until it serves, or not

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> "Child":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=BASE_DIR, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the process, which stops its own children (gunicorn's workers,
        Celery's pool); then SIGKILL to whatever of its group is left."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(10)
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Stack:
    """``with Stack(run_dir) as stack:`` starts nothing; ``start_*`` do, ``close`` stops
    everything that was started, in reverse order."""

    def __init__(self, run_dir: Path, *, worker_concurrency: int = 2,
                 env: dict[str, str] | None = None):
        self.run_dir = run_dir
        self.extra_env = dict(env or {})  # for every process of the stack
        self.broker_url = ""  # the URL of the broker the stack started, if any
        self.worker_concurrency = worker_concurrency
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []
        self.stampsim: StampProcess | None = None
        self.url = ""
        atexit.register(self.close)  # should a second Ctrl-C interrupt the first close

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env, **extra}

    def start_broker(self, data: Path | None = None) -> Child | None:
        """Start the embedded broker and wait until it answers: in ``data`` if given,
        whatever the settings say; otherwise only if the settings use it, with their data
        (``$BUFFET_VAR_DIR/broker``), where every process of the stack looks for it."""
        if data is None:
            if not settings.BUFFET_EMBEDDED_BROKER:
                return None
            data, url = Path(settings.VAR_DIR) / "broker", settings.CELERY_BROKER_URL
        else:
            url = broker.url(data)
        if problem := broker.already_running(data):
            raise StackFailed(problem)
        child = Child("broker", processes.local(processes.broker(str(data))),
                      self.run_dir / "broker.log", self._env())
        child.ready = lambda deadline: broker.wait_until_answers(
            url, deadline, alive=lambda: child.alive)
        self.broker_url = url
        return self._start_ready(child)

    def start_redis(self) -> Child:
        """Start a Redis server of the stack's own on a free port, keeping nothing on disk
        (a restart loses every message), and wait until it answers."""
        import redis

        port = free_port()
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(self.run_dir)]
        child = Child("broker", command, self.run_dir / "broker.log", self._env())

        def ready(deadline: float) -> bool:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5)
            try:
                while time.monotonic() < deadline and child.alive:
                    try:
                        return bool(client.ping())
                    except (redis.ConnectionError, redis.TimeoutError):
                        time.sleep(0.05)  # polling interval, bounded by the deadline
                return False
            finally:
                client.close()

        child.ready = ready
        self.broker_url = f"redis://127.0.0.1:{port}/0"
        return self._start_ready(child)

    def _start_ready(self, child: Child) -> Child:
        self._start(child)
        if child.ready is not None and not child.ready(time.monotonic() + START_TIMEOUT):
            raise StackFailed(f"{child.name} did not answer within {START_TIMEOUT:.0f} s:\n"
                              f"{child.log_tail()}")
        return child

    def restart(self, child: Child) -> Child:
        """SIGKILL what is left of the child's process group and start it again, on the
        same command (the same data, port and name); wait until it answers."""
        if child.process is not None:
            child._signal(signal.SIGKILL)
            child.process.wait(10)
        child.start()
        if child.ready is not None and not child.ready(time.monotonic() + START_TIMEOUT):
            raise StackFailed(f"{child.name} did not answer again within "
                              f"{START_TIMEOUT:.0f} s:\n{child.log_tail()}")
        return child

    def start_stampsim(self, name: str, *args: str) -> StampProcess:
        self.stampsim = StampProcess(name, self.run_dir / "stampsim", args=args)
        self.stampsim.start(timeout=START_TIMEOUT)
        return self.stampsim

    def start_worker(self, queues: list[str], *, pool: str = "prefork") -> Child:
        command = processes.local(processes.worker(",".join(queues),
                                                   concurrency=self.worker_concurrency))
        command += ["--pool", pool, "--hostname", f"bench-{uuid.uuid4().hex[:8]}@%h",
                    "--without-gossip", "--without-mingle"]
        return self._start(Child("worker", command, self.run_dir / "worker.log", self._env()))

    def start_web(self) -> str:
        port = free_port()
        child = self._start(Child("web", processes.local(processes.web(port)),
                                  self.run_dir / "web.log",
                                  self._env(BUFFET_BENCH_ENDPOINTS="1")))
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.check()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)  # polling interval, bounded by the deadline
        raise StackFailed(f"web did not answer /healthz within {START_TIMEOUT:.0f} s:\n"
                          f"{child.log_tail()}")

    def _start(self, child: Child) -> Child:
        self.children.append(child.start())
        return child

    def check(self) -> None:
        """Raise ``StackFailed`` if a process of the stack has died."""
        for child in self.children:
            if not child.alive:
                raise StackFailed(f"{child.name} exited with {child.process.returncode}; "
                                  f"see {child.log_path}:\n{child.log_tail()}")
        if self.stampsim is not None and not self.stampsim.alive:
            raise StackFailed(f"stampsim exited; see {self.stampsim.log_path}:\n"
                              f"{self.stampsim.log_tail()}")

    def meter(self) -> Meter:
        """A CPU meter of the stack's processes (started ones only)."""
        groups = {child.name: child.process.pid for child in self.children}
        pids = {"stampsim": self.stampsim.process.pid} if self.stampsim else {}
        return Meter(groups=groups, pids=pids)

    def close(self) -> None:
        while self.children:
            self.children.pop().stop()
        if self.stampsim is not None:
            self.stampsim.stop()
            self.stampsim = None
        atexit.unregister(self.close)
