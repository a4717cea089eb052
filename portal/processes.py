"""The commands of Buffet's processes, in one place.

The local runner (``buffet run``) starts them, ``docker-compose.yml`` names the same
ones, and a test checks that both agree.
"""

import sys

__all__ = ["beat", "migrate", "stampsim", "web", "worker"]


def web(port: int, host: str = "127.0.0.1") -> list[str]:
    return ["gunicorn", "portal.wsgi:application", "--bind", f"{host}:{port}",
            "--workers", "2", "--threads", "4", "--access-logfile", "-"]


def worker(queues: str = "default", concurrency: int = 2) -> list[str]:
    return ["celery", "-A", "portal", "worker", "--loglevel", "INFO",
            "--queues", queues, "--concurrency", str(concurrency)]


def beat() -> list[str]:
    return ["celery", "-A", "portal", "beat", "--loglevel", "INFO",
            "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"]


def migrate() -> list[str]:
    return ["python", "manage.py", "migrate", "--noinput"]


def stampsim(name: str, port: int, data: str, host: str = "127.0.0.1") -> list[str]:
    return ["python", "-m", "stampsim", "--host", host, "--port", str(port),
            "--name", name, "--data", data]


def local(command: list[str]) -> list[str]:
    """The same command run with this interpreter's environment (the virtualenv)."""
    head, *rest = command
    if head == "python":
        return [sys.executable, *rest]
    return [sys.executable, "-m", {"gunicorn": "gunicorn", "celery": "celery"}[head], *rest]
