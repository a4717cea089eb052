"""``buffet``: the command line of the project.

    buffet run        start web, worker, beat and two stampsim instances, print URL and logins
    buffet stampsim   run one stampsim server (same flags as ``python -m stampsim``)
"""

import argparse
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from portal import processes

BASE_DIR = Path(__file__).resolve().parent.parent


def _wait_http(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own loopback URL
                return True
        except OSError:
            time.sleep(0.2)
    return False


def port_problem(port: int, *, what: str, choose: str, host: str = "127.0.0.1") -> str | None:
    """Why ``what`` cannot listen on ``host:port``, or None if it can.

    The probe binds the way the servers do (gunicorn and stampsim set SO_REUSEADDR), so
    only a listening socket makes a port busy: one whose last connections are still in
    TIME_WAIT, as after a restart, is free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"Port {port} ({what}) is in use: another program listens on "
                        f"{host}:{port} (`ss -ltnp 'sport = :{port}'` shows which). Stop it, "
                        f"or choose another port with {choose}.")
            return (f"Port {port} ({what}) cannot be used: {exc.strerror}. Choose another "
                    f"port with {choose}.")
    return None


def _django_setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()


def run(args) -> int:
    port = int(os.environ.get("BUFFET_PORT", args.port))
    var = Path(os.environ.get("BUFFET_VAR_DIR", BASE_DIR / "var"))
    var.mkdir(parents=True, exist_ok=True)
    stamps = [("stamp-a", args.stampsim_port), ("stamp-b", args.stampsim_port + 1)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    problems = [port_problem(port, what="web", choose="--port or BUFFET_PORT"),
                *(port_problem(p, what=name, choose="--stampsim-port or BUFFET_STAMPSIM_PORT")
                  for name, p in stamps)]
    if any(problems):
        print("\n".join(filter(None, problems)), file=sys.stderr)
        return 2
    children: list[tuple[str, subprocess.Popen]] = []

    def start(name: str, command: list[str]) -> None:
        log = open(var / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child's life
        children.append((name, subprocess.Popen(processes.local(command), cwd=BASE_DIR, env=env,
                                                stdout=log, stderr=subprocess.STDOUT)))

    def stop(*_):
        for _name, child in children:
            if child.poll() is None:
                child.terminate()
        for _name, child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    print("Preparing the database…", flush=True)
    subprocess.run(processes.local(processes.migrate()), cwd=BASE_DIR, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "manage.py", "demo",
                    "--stamp-a", f"http://127.0.0.1:{stamps[0][1]}",
                    "--stamp-b", f"http://127.0.0.1:{stamps[1][1]}"],
                   cwd=BASE_DIR, env=env, check=True)
    _django_setup()
    from fabric.models import Stamp
    from portal.management.commands import demo

    queues = ",".join(["default", *(s.queue for s in Stamp.objects.all())])
    signal.signal(signal.SIGINT, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        for name, stamp_port in stamps:
            start(name, processes.stampsim(name, stamp_port, str(var / "stampsim" / name)))
        start("worker", processes.worker(queues=queues))
        start("beat", processes.beat())
        start("web", processes.web(port))
        url = f"http://127.0.0.1:{port}"
        if not _wait_http(f"{url}/healthz", time.monotonic() + 60):
            print(f"The web server did not come up; see {var / 'web.log'}", file=sys.stderr)
            return 1
        admin = os.environ.get("BUFFET_ADMIN_EMAIL", demo.ADMIN_EMAIL)
        admin_password = os.environ.get("BUFFET_ADMIN_PASSWORD", demo.ADMIN_PASSWORD)
        print(f"""
Buffet is running at {url}/
  provider admin : {admin} / {admin_password}
  demo tenant    : {demo.TENANT_EMAIL} / {demo.TENANT_PASSWORD}
  API docs       : {url}/api/docs/
  stamps         : {', '.join(f'{n} on 127.0.0.1:{p}' for n, p in stamps)}
  logs           : {var}/*.log
Press Ctrl-C to stop everything.""", flush=True)
        while True:
            for name, child in children:
                if child.poll() is not None:
                    print(f"{name} exited with {child.returncode}; see {var / name}.log",
                          file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="buffet")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run the whole portal locally")
    run_parser.add_argument("--port", type=int, default=8000)
    run_parser.add_argument("--stampsim-port", type=int,
                            default=int(os.environ.get("BUFFET_STAMPSIM_PORT", "8101")))
    sub.add_parser("stampsim", help="run a stampsim server", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "stampsim":
        from stampsim.__main__ import main as stampsim_main

        return stampsim_main(rest) or 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
