"""Real processes for integration tests: a Celery worker on the test database, and the
broker the test process publishes to."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.db import connection, connections

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    return f"sqlite:///{s['NAME']}"


class WorkerProcess:
    """``celery worker`` in its own process group, consuming the given queues."""

    def __init__(self, queues: list[str], log_dir: Path, *, concurrency: int = 1,
                 args: tuple[str, ...] = (), **env: str):
        self.queues = queues
        self.concurrency = concurrency
        self.args = tuple(args)  # more options of ``celery worker`` (--pool, --stamp-drivers)
        self.name = f"test-{uuid.uuid4().hex[:8]}"
        self.log_path = log_dir / f"{self.name}.log"
        self.env = {**os.environ, "DATABASE_URL": test_database_url(), "PYTHONUNBUFFERED": "1",
                    "BUFFET_JOB_LEASE_SECONDS": "3", **env}
        self.process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel", "INFO",
             "--queues", ",".join(self.queues), "--concurrency", str(self.concurrency),
             "--hostname", f"{self.name}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat", *self.args],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        return self

    def pool_processes(self) -> list[int]:
        """The pids of the worker's pool processes (children of any of its threads: the
        pool starts replacements from a thread of its own)."""
        pids = []
        for task in Path(f"/proc/{self.process.pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                pids += [int(pid) for pid in (task / "children").read_text().split()]
        return pids

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children) at once."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@contextlib.contextmanager
def publishing_to(broker_url: str):
    """Point this process's Celery app, and the processes it starts, at ``broker_url``."""
    from portal.celery import app

    def forget_connections():
        # What Celery and kombu do after a fork: the pools are made again on next use
        # (kombu's own registry of pools too, or a later publish finds a closed one).
        from kombu import pools

        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        if "amqp" in app.__dict__:
            app.amqp._producer_pool = None
        pools.reset()

    previous = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = broker_url  # Celery reads it before its settings
    forget_connections()
    try:
        yield broker_url
    finally:
        if previous is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = previous
        forget_connections()


def wait_for(predicate, *, timeout: float, interval: float = 0.2, message: str = ""):
    """Poll until ``predicate()`` is truthy; return its value or fail with ``message``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {message}")
        time.sleep(interval)


def race(n: int, fn):
    """Run ``fn(i)`` in n threads released at the same moment; return results/exceptions."""
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait(timeout=30)
        try:
            return fn(i)
        except Exception as exc:  # noqa: BLE001 - the race's outcome is what we assert on
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))
