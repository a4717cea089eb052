"""``buffet``: the command line of the project.

    buffet run        start web, worker, beat, two stampsim instances and, unless
                      CELERY_BROKER_URL is set, the embedded broker; print URL and logins;
                      a process that dies is restarted, Ctrl-C or SIGTERM stops them all
    buffet stampsim   run one stampsim server (same flags as ``python -m stampsim``)
"""

import argparse
import contextlib
import errno
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from portal import broker, processes

BASE_DIR = Path(__file__).resolve().parent.parent
# What the libvirt worker listens on before there is a libvirt stamp (nothing is sent
# there): Celery needs a queue to start with.
LIBVIRT_IDLE_QUEUE = "libvirt.idle"
# The same for the stamps' worker before any stamp is registered.
STAMPS_IDLE_QUEUE = "stamps.idle"
# Threads of the stamps' worker: its steps wait on the stamps' HTTP answers, not the CPU.
STAMP_THREADS = 8


def _wait_http(url: str, deadline: float, supervisor: processes.Supervisor) -> bool:
    """Poll ``url`` until it answers, restarting what dies meanwhile; False at the deadline
    or when a stop is asked for."""
    while time.monotonic() < deadline and not supervisor.stop_requested:
        supervisor.poll()
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


def _welcome(url: str, stamps: list[tuple[str, int]], var: Path) -> str:
    from portal.management.commands import demo
    from tenants import services
    from tenants.models import User

    admin = os.environ.get("BUFFET_ADMIN_EMAIL", demo.ADMIN_EMAIL)
    admin_password = os.environ.get("BUFFET_ADMIN_PASSWORD", demo.ADMIN_PASSWORD)
    device = services.confirmed_device(User.objects.get(email__iexact=admin))
    key = services.authenticator_key(device) if device else "none: set one up after logging in"
    return f"""
Buffet is running at {url}/
  provider admin : {admin} / {admin_password}  at {url}/admin/
  admin 2FA key  : {key}
                   (add it to an authenticator app, or: oathtool --totp -b KEY)
  demo tenant    : {demo.TENANT_EMAIL} / {demo.TENANT_PASSWORD}
  API docs       : {url}/api/docs/
  stamps         : {', '.join(f'{n} on 127.0.0.1:{p}' for n, p in stamps)}
  logs           : {var}/*.log
A process that dies is restarted. Press Ctrl-C to stop everything."""


def run(args) -> int:
    port = args.port
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
    try:
        with _embedded_broker(var) as embedded:
            return _start(port, stamps, var, env, embedded)
    except broker.BrokerError as exc:
        print(exc, file=sys.stderr)
        return 2


def _embedded_broker(var: Path):
    """The broker the settings use when CELERY_BROKER_URL is not set, to be started before
    anything publishes (the demo data commissions a subscription) and stopped after all
    the other processes; with CELERY_BROKER_URL, nothing."""
    if os.environ.get("CELERY_BROKER_URL"):
        return contextlib.nullcontext()
    return broker.EmbeddedBroker(var / "broker", log_path=var / "broker.log")


def _start(port: int, stamps: list[tuple[str, int]], var: Path, env: dict[str, str],
           embedded: broker.EmbeddedBroker | None = None) -> int:
    try:
        print("Preparing the database…", flush=True)
        subprocess.run(processes.local(processes.migrate()), cwd=BASE_DIR, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, "manage.py", "demo",
                        "--stamp-a", f"http://127.0.0.1:{stamps[0][1]}",
                        "--stamp-b", f"http://127.0.0.1:{stamps[1][1]}"],
                       cwd=BASE_DIR, env=env, check=True)
    except KeyboardInterrupt:
        print("\nStopped.", file=sys.stderr)
        return 130
    _django_setup()
    from fabric.models import DriverKind, Stamp

    # The stamps' queues have a worker of their own, one process with threads: a step
    # spends its time waiting for its stamp to answer, and a thread waiting holds no
    # process. The prefork worker runs beat's periodic tasks on ``default``. The stamps'
    # worker follows the stamps: one registered while it runs has its queue consumed too.
    # libvirt stamps have a worker of their own, also with threads: a ``test:///`` host
    # lives inside the process that opened it, so every job of such a stamp must run in
    # the same process (a prefork pool would give each child a host).
    others = [kind for kind in DriverKind.values if kind != DriverKind.LIBVIRT]
    stamp_queues = ",".join(s.queue for s in Stamp.objects.filter(driver__in=others))
    libvirt_queues = ",".join(s.queue for s in Stamp.objects.filter(driver=DriverKind.LIBVIRT))
    # A child that dies is started again (with backoff) by the supervisor; only Ctrl-C,
    # SIGTERM or the terminal going away (SIGHUP, which no longer reaches the children in
    # their own sessions) stops everything.
    supervisor = processes.Supervisor(cwd=BASE_DIR, env=env, log_dir=var)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, supervisor.request_stop)
    if embedded is not None:  # restarted like the others when it dies, stopped after them
        supervisor.adopt("broker", broker.server_command(embedded.data_dir), embedded.process,
                         last=True)
    try:
        for name, stamp_port in stamps:
            supervisor.start(name, processes.local(
                processes.stampsim(name, stamp_port, str(var / "stampsim" / name))))
        supervisor.start("worker", processes.local(processes.worker(queues="default")))
        supervisor.start("worker-stamps", processes.local(processes.worker(
            queues=stamp_queues or STAMPS_IDLE_QUEUE, concurrency=STAMP_THREADS,
            pool="threads", stamp_drivers=",".join(others))))
        if importlib.util.find_spec("libvirt") is not None:  # the libvirt extra is installed
            supervisor.start("worker-libvirt", processes.local(processes.worker(
                queues=libvirt_queues or LIBVIRT_IDLE_QUEUE, pool="threads",
                stamp_drivers=DriverKind.LIBVIRT)))
        supervisor.start("beat", processes.local(processes.beat()))
        supervisor.start("web", processes.local(processes.web(port)))
        url = f"http://127.0.0.1:{port}"
        if _wait_http(f"{url}/healthz", time.monotonic() + 60, supervisor):
            print(_welcome(url, stamps, var), flush=True)
            supervisor.run()
        elif not supervisor.stop_requested:
            print(f"The web server did not come up; see {supervisor.log_path('web')}",
                  file=sys.stderr)
            return 1
        print("\nStopping…", flush=True)
        return 0
    finally:
        supervisor.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="buffet")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run the whole portal locally")
    run_parser.add_argument("--port", type=int,
                            default=int(os.environ.get("BUFFET_PORT", "8000")))
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
