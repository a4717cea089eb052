"""Celery entry points of the DR add-on: the RPO-driven replication syncs (beat)."""

from celery import shared_task

from dr_addon import services

__all__ = ["sync_due"]


@shared_task(name="dr_addon.sync_due", ignore_result=True)
def sync_due() -> list[str]:
    return services.sync_due()
