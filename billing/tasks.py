"""Celery entry points of billing. Thin: they load and call the metering and invoicing."""

from celery import shared_task

__all__ = ["collect_usage", "refresh_invoices"]


@shared_task(name="billing.collect_usage", ignore_result=True)
def collect_usage() -> dict:
    """Every minute (beat): each stamp's usage up to the last whole minute."""
    from billing import metering

    return {report.stamp: {"minutes": report.minutes, "rows": report.rows,
                           "missing": report.missing}
            for report in metering.collect_all()}


@shared_task(name="billing.refresh_invoices", ignore_result=True)
def refresh_invoices() -> int:
    """Every few minutes (beat): the draft invoices of the running month, and burst caps."""
    from billing import invoices

    return invoices.refresh_drafts()
