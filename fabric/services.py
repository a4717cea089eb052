"""Use cases of the provider's fabric catalog: stamps, clouds, templates."""

import time
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from base import events
from base.errors import Invalid
from base.events import Event
from fabric.models import Cloud, CloudCapacity, Health, Stamp, StampCheck, Template
from tenants.models import User

__all__ = ["check_stamp", "driver_for", "save_cloud", "save_stamp", "save_template"]


CHECK_HISTORY = 288  # a day of checks at one a five minutes
HEALTH_TIMEOUT = 5.0  # a health probe answers fast or the stamp counts as unreachable


def _save(instance, fields: dict[str, Any]):
    for name, value in fields.items():
        setattr(instance, name, value)
    instance.full_clean()
    instance.save()
    return instance


@transaction.atomic
def save_stamp(stamp: Stamp | None, *, fields: dict[str, Any], acting_user: User) -> Stamp:
    creating = stamp is None
    stamp = _save(stamp or Stamp(), fields)
    events.record(Event.STAMP_REGISTERED if creating else Event.STAMP_CHANGED, stamp,
                  acting_user=acting_user)
    return stamp


@transaction.atomic
def save_cloud(cloud: Cloud | None, *, fields: dict[str, Any], acting_user: User) -> Cloud:
    """Create or resize a cloud; its capacity ledger follows (use may exceed a lowered limit)."""
    if (
        cloud is not None
        and "stamp" in fields
        and fields["stamp"].pk != cloud.stamp_id
        and cloud.plans.exists()
    ):
        raise Invalid(
            "A cloud that plans use cannot move to another stamp.",
            errors={"stamp": ["Plans are bound to this cloud."]},
        )
    cloud = _save(cloud or Cloud(), fields)
    for dimension, limit in cloud.limits().items():
        CloudCapacity.objects.update_or_create(
            cloud=cloud, dimension=dimension, defaults={"limit": limit}
        )
    return cloud


@transaction.atomic
def save_template(
    template: Template | None, *, fields: dict[str, Any], acting_user: User
) -> Template:
    return _save(template or Template(), fields)


def driver_for(stamp: Stamp, *, timeout: float | None = None):
    """The driver that talks to this stamp."""
    from fabric.drivers import get_driver

    return get_driver(
        stamp.driver,
        name=stamp.name,
        endpoint=stamp.endpoint,
        credentials=stamp.credentials,
        timeout=timeout or settings.BUFFET_DRIVER_TIMEOUT,
    )


def check_stamp(stamp: Stamp, *, acting_user: User | None = None) -> Stamp:
    """Ask the fabric for its health and capacity and record the answer."""
    from fabric.drivers import DriverError

    started = time.perf_counter()
    try:
        health = driver_for(stamp, timeout=HEALTH_TIMEOUT).health()
    except DriverError as exc:
        stamp.health, stamp.health_detail = Health.UNREACHABLE, str(exc)
    else:
        stamp.health, stamp.health_detail = Health.HEALTHY, ""
        stamp.capacity = {
            "capacity": asdict(health.capacity),
            "allocated": asdict(health.allocated),
        }
    latency = (time.perf_counter() - started) * 1000
    stamp.last_checked_at = timezone.now()
    with transaction.atomic():
        stamp.save(update_fields=["health", "health_detail", "capacity", "last_checked_at"])
        StampCheck.objects.create(stamp=stamp, health=stamp.health, detail=stamp.health_detail,
                                  latency_ms=round(latency, 1), capacity=stamp.capacity)
        # Keep a bounded history: the last CHECK_HISTORY checks of each stamp.
        old = stamp.checks.order_by("-at").values_list("pk", flat=True)[CHECK_HISTORY:]
        StampCheck.objects.filter(pk__in=list(old)).delete()
    return stamp
