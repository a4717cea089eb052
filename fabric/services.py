"""Use cases of the provider's fabric catalog: stamps, clouds, templates."""

import hashlib
import json
import os
import threading
import time
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from base import events
from base.errors import Conflict, ErrorCode, Invalid
from base.events import Event
from fabric.models import Cloud, CloudCapacity, Health, Stamp, StampCheck, Template
from tenants.models import User

__all__ = ["check_stamp", "delete_stamp", "driver_for", "kept_driver", "save_cloud",
           "save_stamp", "save_template", "stamp_users"]


CHECK_HISTORY = 288  # a day of checks at one a five minutes
HEALTH_TIMEOUT = 5.0  # a health probe answers fast or the stamp counts as unreachable


def _save(instance, fields: dict[str, Any], *, acting_user: User, created: Event,
          changed: Event):
    """Set ``fields``, check and save; record what changed (secret fields such as a
    stamp's credentials are named in ``detail`` when they change, never shown: ``rotated``)."""
    creating = instance._state.adding
    before = {} if creating else events.values(instance)
    for name, value in fields.items():
        setattr(instance, name, value)
    instance.full_clean()
    instance.save()
    secrets = sorted(name for name in fields if events.is_secret(name))
    events.record(created if creating else changed, instance, acting_user=acting_user,
                  before=before, after=events.values(instance),
                  **({"rotated": ", ".join(secrets)} if secrets else {}))
    return instance


@transaction.atomic
def save_stamp(stamp: Stamp | None, *, fields: dict[str, Any], acting_user: User) -> Stamp:
    return _save(stamp or Stamp(), fields, acting_user=acting_user,
                 created=Event.STAMP_REGISTERED, changed=Event.STAMP_CHANGED)


def stamp_users(stamp: Stamp) -> list[str]:
    """What keeps the stamp from being deleted: its clouds by name (their plans and sites
    are on them), then a count of every other row that points at it (jobs)."""
    users = []
    clouds = list(stamp.clouds.order_by("name").values_list("name", flat=True))
    if clouds:
        users.append(f"{'clouds' if len(clouds) > 1 else 'cloud'} {', '.join(clouds)}")
    # The layers above (jobs) refer to stamps too; Django knows those relations, so they
    # are counted without this layer importing them.
    for relation in Stamp._meta.related_objects:
        if relation.related_model is Cloud or relation.on_delete is not models.PROTECT:
            continue
        count = relation.related_model._base_manager.filter(
            **{relation.field.name: stamp}).count()
        if count:
            meta = relation.related_model._meta
            noun = meta.verbose_name if count == 1 else meta.verbose_name_plural
            users.append(f"{count} {noun}")
    return users


@transaction.atomic
def delete_stamp(stamp: Stamp, *, acting_user: User) -> None:
    """Delete a stamp that nothing uses; its health history goes with it."""
    # The row lock makes a job being enqueued on the stamp either visible to the count or
    # wait for the delete (and fail on the missing stamp).
    stamp = Stamp.objects.select_for_update().get(pk=stamp.pk)
    users = stamp_users(stamp)
    if users:
        raise Conflict(f"Stamp '{stamp.name}' is in use: {'; '.join(users)}.",
                       code=ErrorCode.STAMP_IN_USE)
    events.record(Event.STAMP_DELETED, stamp, acting_user=acting_user,
                  before=events.values(stamp, ["name", "region", "driver", "endpoint"]),
                  deleted=stamp.name)
    stamp.delete()


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
    cloud = _save(cloud or Cloud(), fields, acting_user=acting_user,
                  created=Event.CLOUD_CREATED, changed=Event.CLOUD_CHANGED)
    for dimension, limit in cloud.limits().items():
        CloudCapacity.objects.update_or_create(
            cloud=cloud, dimension=dimension, defaults={"limit": limit}
        )
    return cloud


@transaction.atomic
def save_template(
    template: Template | None, *, fields: dict[str, Any], acting_user: User
) -> Template:
    return _save(template or Template(), fields, acting_user=acting_user,
                 created=Event.TEMPLATE_CREATED, changed=Event.TEMPLATE_CHANGED)


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


_kept = threading.local()


def kept_driver(stamp: Stamp):
    """The stamp's driver kept by this thread, where its kind keeps something worth
    keeping between jobs (``reusable``: a keep-alive HTTP client), so that a worker's jobs
    on one stamp reuse one connection instead of building a client and connecting for
    each job. Kept while the stamp's driver, endpoint and credentials stay as they are
    (a changed one is built anew and the old one closed); a kind that is not reusable is
    built for each call, as ``driver_for`` does. One per thread: a threads pool's jobs
    never share a client; a forked process starts with none of its parent's."""
    if getattr(_kept, "pid", None) != os.getpid():
        _kept.pid, _kept.drivers = os.getpid(), {}
    credentials = hashlib.sha256(json.dumps(stamp.credentials, sort_keys=True, default=str)
                                 .encode()).hexdigest()
    key = (stamp.driver, stamp.name, stamp.endpoint, credentials,
           settings.BUFFET_DRIVER_TIMEOUT)
    held = _kept.drivers.get(stamp.pk)
    if held is not None:
        if held[0] == key:
            return held[1]
        del _kept.drivers[stamp.pk]
        held[1].close()
    driver = driver_for(stamp)
    if getattr(driver, "reusable", False):
        _kept.drivers[stamp.pk] = (key, driver)
    return driver


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
        if acting_user is not None:  # asked for by a person, not the scheduled probe
            events.record(Event.STAMP_CHECKED, stamp, acting_user=acting_user,
                          health=stamp.health)
    return stamp
