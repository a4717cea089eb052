"""``/healthz`` (process up) and ``/readyz`` (what this process needs to serve: the
database and the broker).

Stamps are not this process's dependencies: one broken fabric must not take the web tier
out of a load balancer. ``/readyz`` reports what the stamps' last checks found (beat
checks every stamp each minute; the provider can check one at any time) without calling
them, so it answers fast whatever a stamp does; ``/metrics`` exports the same.
"""

from django.db import connection
from django.http import JsonResponse
from prometheus_client import Gauge

__all__ = ["collect_gauges", "healthz", "readyz"]

JOBS = Gauge("buffet_jobs", "Jobs by state", ["state"])
SUBSCRIPTIONS = Gauge("buffet_subscriptions", "Subscriptions by state", ["state"])
USAGE_MISSING = Gauge("buffet_usage_missing_minutes",
                      "Minutes of a stamp's usage not read yet (it did not answer), or lost",
                      ["stamp", "state"])
STAMP_UP = Gauge("buffet_stamp_healthy", "1 if the stamp answered its last check", ["stamp"])
STAMP_ENABLED = Gauge("buffet_stamp_enabled", "1 if the stamp takes new work", ["stamp"])
STAMP_CHECKED = Gauge("buffet_stamp_last_check_timestamp_seconds",
                      "When the stamp was last checked (Unix time)", ["stamp"])


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


def _stamp_reports() -> dict[str, str]:
    """Each stamp's last check in a few words: ``ok``, or what went wrong and when."""
    from fabric.models import Health, Stamp

    reports = {}
    for stamp in Stamp.objects.order_by("name"):
        if stamp.health == Health.HEALTHY:
            report = "ok"
        elif stamp.last_checked_at is None:
            report = "not checked yet"
        else:
            report = (f"{stamp.get_health_display().lower()} at "
                      f"{stamp.last_checked_at:%Y-%m-%dT%H:%M:%SZ}: {stamp.health_detail}")
        reports[stamp.name] = report if stamp.enabled else f"{report} (takes no new work)"
    return reports


def readyz(request):
    checks = {"database": _check_database(), "broker": _check_broker()}
    ready = all(v is None for v in checks.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {k: v or "ok" for k, v in checks.items()},
        # Reported, not required (see the module's docstring).
        "stamps": _stamp_reports() if checks["database"] is None else {},
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
    for gauge in (STAMP_UP, STAMP_ENABLED, STAMP_CHECKED):
        gauge.clear()
    for name, health, enabled, checked in Stamp.objects.values_list(
            "name", "health", "enabled", "last_checked_at"):
        STAMP_UP.labels(name).set(1 if health == Health.HEALTHY else 0)
        STAMP_ENABLED.labels(name).set(1 if enabled else 0)
        if checked is not None:
            STAMP_CHECKED.labels(name).set(checked.timestamp())
    _usage_gauges()


def _usage_gauges() -> None:
    """The missing-usage alert: minutes per stamp still ``missing`` or ``unrecoverable``."""
    from billing.models import MissingState, MissingUsage

    USAGE_MISSING.clear()
    minutes: dict[tuple[str, str], float] = {}
    for name, state, start, end in MissingUsage.objects.exclude(
            state=MissingState.BACKFILLED).values_list("stamp__name", "state", "start", "end"):
        minutes[name, state] = minutes.get((name, state), 0) + (end - start).total_seconds() / 60
    for (name, state), count in minutes.items():
        USAGE_MISSING.labels(name, state).set(count)
