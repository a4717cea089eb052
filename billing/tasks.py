"""Celery entry points of billing. Thin: they load and call the metering."""

from celery import shared_task

__all__ = ["collect_usage"]


@shared_task(name="billing.collect_usage", ignore_result=True)
def collect_usage() -> dict:
    """Every minute (beat): each stamp's usage up to the last whole minute."""
    from billing import metering

    return {report.stamp: {"minutes": report.minutes, "rows": report.rows,
                           "missing": report.missing}
            for report in metering.collect_all()}
