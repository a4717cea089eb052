"""``/healthz`` (process up), ``/readyz`` (database, broker, stamps)."""

from concurrent.futures import ThreadPoolExecutor

from django.db import connection
from django.http import JsonResponse
from prometheus_client import Gauge

__all__ = ["collect_gauges", "healthz", "readyz"]

JOBS = Gauge("buffet_jobs", "Jobs by state", ["state"])
SUBSCRIPTIONS = Gauge("buffet_subscriptions", "Subscriptions by state", ["state"])
STAMP_UP = Gauge("buffet_stamp_healthy", "1 if the stamp answered its last check", ["stamp"])


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return str(exc)
    return None


def _check_broker() -> str | None:
    from portal.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001
        return str(exc)
    return None


def _check_stamps() -> dict[str, str | None]:
    from fabric.drivers import DriverError
    from fabric.models import Stamp
    from fabric.services import HEALTH_TIMEOUT, driver_for

    stamps = list(Stamp.objects.all())

    def probe(stamp):
        try:
            driver_for(stamp, timeout=HEALTH_TIMEOUT).health()
        except DriverError as exc:
            return stamp.name, str(exc)
        return stamp.name, None

    if not stamps:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(stamps))) as pool:
        return dict(pool.map(probe, stamps))


def readyz(request):
    checks = {"database": _check_database(), "broker": _check_broker()}
    stamps = _check_stamps() if checks["database"] is None else {}
    ready = all(v is None for v in checks.values()) and all(v is None for v in stamps.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {k: v or "ok" for k, v in checks.items()},
        "stamps": {k: v or "ok" for k, v in stamps.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)


def collect_gauges() -> None:
    from django.db.models import Count

    from fabric.models import Health, Stamp
    from plans.models import Subscription
    from provisioning.models import Job

    JOBS.clear()
    for row in Job.objects.values("state").annotate(n=Count("pk")):
        JOBS.labels(row["state"]).set(row["n"])
    SUBSCRIPTIONS.clear()
    for row in Subscription.objects.values("state").annotate(n=Count("pk")):
        SUBSCRIPTIONS.labels(row["state"]).set(row["n"])
    STAMP_UP.clear()
    for name, health in Stamp.objects.values_list("name", "health"):
        STAMP_UP.labels(name).set(1 if health == Health.HEALTHY else 0)
