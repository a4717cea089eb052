"""The commands of Buffet's processes, in one place, and the supervisor that keeps them up.

The local runner (``buffet run``) starts them under a :class:`Supervisor`,
``docker-compose.yml`` names the same ones, and a test checks that both agree.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Backoff", "Supervisor", "beat", "broker", "local", "migrate", "stampsim", "web",
           "worker"]


def web(port: int, host: str = "127.0.0.1") -> list[str]:
    return ["gunicorn", "portal.wsgi:application", "--bind", f"{host}:{port}",
            "--workers", "2", "--threads", "4", "--access-logfile", "-"]


def worker(queues: str = "default", concurrency: int = 2, *, pool: str | None = None,
           stamp_drivers: str | None = None) -> list[str]:
    """A Celery worker; ``stamp_drivers`` also consumes the queues of those kinds' stamps,
    registered later too (``portal.worker_queues``)."""
    command = ["celery", "-A", "portal", "worker", "--loglevel", "INFO",
               "--queues", queues, "--concurrency", str(concurrency)]
    if pool:
        command += ["--pool", pool]
    if stamp_drivers:
        command += ["--stamp-drivers", stamp_drivers]
    return command


def beat() -> list[str]:
    return ["celery", "-A", "portal", "beat", "--loglevel", "INFO",
            "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"]


def migrate() -> list[str]:
    return ["python", "manage.py", "migrate", "--noinput"]


def stampsim(name: str, port: int, data: str, host: str = "127.0.0.1") -> list[str]:
    return ["python", "-m", "stampsim", "--host", host, "--port", str(port),
            "--name", name, "--data", data]


def broker(data: str) -> list[str]:
    """The embedded broker (``portal.broker``); a deployment runs Redis instead."""
    return ["python", "-m", "portal.broker", "--data", data]


def local(command: list[str]) -> list[str]:
    """The same command run with this interpreter's environment (the virtualenv)."""
    head, *rest = command
    if head == "python":
        return [sys.executable, *rest]
    return [sys.executable, "-m", {"gunicorn": "gunicorn", "celery": "celery"}[head], *rest]


@dataclass(frozen=True)
class Backoff:
    """How long a dead process waits before it is started again: ``first`` seconds after
    its first death, doubled at each death in a row up to ``cap``; a process that had
    stayed up ``reset_after`` seconds before it died counts as dying for the first time."""

    first: float = 1.0
    cap: float = 30.0
    reset_after: float = 60.0

    def next_delay(self, previous: float, uptime: float) -> float:
        if previous <= 0 or uptime >= self.reset_after:
            return self.first
        return min(previous * 2, self.cap)


@dataclass
class _Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    delay: float = 0.0  # the last wait before a restart; the next one doubles it
    restart_at: float | None = None
    last: bool = False  # stopped after the others (what they talk to while they stop)


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Supervisor:
    """Runs named child processes and starts again, after a :class:`Backoff`, each one that
    dies, until it is asked to stop; then it stops them all.

    Each child runs in a session of its own: Ctrl-C reaches only the supervisor, which
    terminates the children itself, and what a dead child leaves in its process group
    (gunicorn's workers holding the port, celery's pool) is killed with it. A child's
    output goes to ``<log_dir>/<name>.log``; deaths and restarts go to ``say``.
    ``clock`` and ``sleep`` are injectable so that tests need not wait out the backoff.
    """

    def __init__(self, *, cwd: Path, env: dict[str, str], log_dir: Path,
                 backoff: Backoff = Backoff(), say: Callable[[str], None] = _say,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.cwd, self.env, self.log_dir = cwd, env, log_dir
        self.backoff, self.say, self.clock, self.sleep = backoff, say, clock, sleep
        self.stop_requested = False
        self._children: dict[str, _Child] = {}

    def start(self, name: str, command: list[str]) -> None:
        child = self._children[name] = _Child(name, command)
        self._spawn(child)

    def adopt(self, name: str, command: list[str], process: subprocess.Popen, *,
              last: bool = False) -> None:
        """Watch ``process``, started elsewhere from ``command``, like a child of its own:
        restarted from ``command`` when it dies; with ``last``, stopped after the others."""
        self._children[name] = _Child(name, command, process, self.clock(), last=last)

    def process(self, name: str) -> subprocess.Popen | None:
        """The running process of ``name``; None while it waits to be restarted."""
        return self._children[name].process

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def poll(self) -> None:
        """Notice the children that died and start those whose wait is over."""
        for child in self._children.values():
            if child.process is not None:
                if _exited(child.process):
                    self._buried(child, _describe(_reap(child.process)))
            elif child.restart_at is not None and self.clock() >= child.restart_at:
                self._spawn(child)
                if child.process is not None:
                    self.say(f"{child.name} restarted after {child.delay:g}s "
                             f"(pid {child.process.pid})")

    def request_stop(self, *_signal_args) -> None:
        """Make :meth:`run` return; safe to call from a signal handler."""
        self.stop_requested = True

    def run(self, interval: float = 0.5) -> None:
        """Keep the children running until :meth:`request_stop`."""
        while not self.stop_requested:
            self.poll()
            self.sleep(interval)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every child, wait up to ``grace`` seconds for them all, then SIGKILL
        what is left of their process groups.

        SIGTERM goes to the child alone, as Docker sends it: gunicorn and celery stop
        their own workers, and a celery pool process terminated behind its master's back
        stalls the master's warm shutdown past any sensible grace.
        """
        for last in (False, True):
            running = [c for c in self._children.values()
                       if c.process is not None and c.last is last]
            for child in running:
                os.kill(child.process.pid, signal.SIGTERM)  # not reaped: still its pid
            deadline = self.clock() + grace
            while self.clock() < deadline and not all(_exited(c.process) for c in running):
                self.sleep(0.05)
            for child in running:
                hung = not _exited(child.process)
                _reap(child.process)
                if hung:
                    self.say(f"{child.name} did not stop within {grace:g}s; killed")
                child.process = None
        for child in self._children.values():
            child.restart_at = None

    def _spawn(self, child: _Child) -> None:
        child.started_at, child.restart_at = self.clock(), None
        try:
            with open(self.log_path(child.name), "ab") as log:
                child.process = subprocess.Popen(
                    child.command, cwd=self.cwd, env=self.env, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            child.process = None
            self._buried(child, f"could not be started ({exc})")

    def _buried(self, child: _Child, how: str) -> None:
        now = self.clock()
        uptime = now - child.started_at
        child.process = None
        child.delay = self.backoff.next_delay(child.delay, uptime)
        child.restart_at = now + child.delay
        self.say(f"{child.name} {how} after {uptime:.0f}s; restarting in {child.delay:g}s "
                 f"(output in {self.log_path(child.name)})")


def _exited(process: subprocess.Popen) -> bool:
    """Whether the child has ended, without reaping it: until it is reaped, its pid (the id
    of its process group) cannot be given to another process, so signalling the group
    afterwards cannot hit a stranger."""
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True  # already reaped


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _reap(process: subprocess.Popen) -> int:
    """Kill what is left in the child's process group (the child itself if it still runs)
    and collect its exit status."""
    if process.returncode is None:
        _signal_group(process, signal.SIGKILL)
    return process.wait()


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"
