"""Usage records by the minute, the collection cursor per stamp and the minutes missing.

A usage record is unique on (subscription, resource, meter, minute) and written by upsert,
so a crash between writing and advancing the cursor, or a rerun, never counts a minute
twice. A stamp that does not answer leaves a ``MissingUsage`` range, never zeros.
"""

from django.db import models

__all__ = ["BURST_DIMENSIONS", "METERS", "Meter", "MeterCursor", "MissingState", "MissingUsage",
           "ResourceType", "UsageHour", "UsageRecord", "burst_meter"]

BURST_DIMENSIONS = ("vcpus", "memory_mb", "storage_gb", "vms", "snapshots")


class Meter(models.TextChoices):
    """What is counted, in unit-minutes (API.md "Usage, burst and invoices")."""

    VCPUS = "vcpus", "vCPU-minutes"
    MEMORY_MB = "memory_mb", "MB-minutes"
    STORAGE_GB = "storage_gb", "GB-minutes"
    VMS = "vms", "VM-minutes"
    SNAPSHOTS = "snapshots", "snapshot-minutes"
    DR_PROTECTED_VMS = "dr.protected_vms", "protected-VM-minutes"
    BURST_VCPUS = "burst.vcpus", "vCPU-minutes above quota"
    BURST_MEMORY_MB = "burst.memory_mb", "MB-minutes above quota"
    BURST_STORAGE_GB = "burst.storage_gb", "GB-minutes above quota"
    BURST_VMS = "burst.vms", "VM-minutes above quota"
    BURST_SNAPSHOTS = "burst.snapshots", "snapshot-minutes above quota"


METERS = tuple(Meter.values)


def burst_meter(dimension: str) -> str:
    return f"burst.{dimension}"


class ResourceType(models.TextChoices):
    VM = "vm", "VM"
    SUBSCRIPTION = "subscription", "Subscription"  # burst rows: the subscription's own


class UsageRecord(models.Model):
    """One meter's quantity for one resource in one minute (UTC, ``second == 0``).

    A minute of 100 000 VMs is about 410 000 rows, so each row keeps to two index entries
    (its id and the unique key, ordered so that it also serves a subscription's window)
    and no foreign-key check in the database: the collector writes only subscriptions
    and stamps it has just read, and deleting either still cascades or is refused here,
    in the ORM."""

    subscription = models.ForeignKey("plans.Subscription", on_delete=models.CASCADE,
                                     related_name="usage_records", db_constraint=False,
                                     db_index=False)
    resource_type = models.CharField(max_length=16, choices=ResourceType.choices)
    resource_id = models.CharField(max_length=64)
    meter = models.CharField(max_length=32, choices=Meter.choices)
    minute = models.DateTimeField()
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    stamp = models.ForeignKey("fabric.Stamp", on_delete=models.PROTECT,
                              related_name="usage_records", db_constraint=False,
                              db_index=False)

    class Meta:
        constraints = [
            # (subscription, minute) first: a subscription's window is a range of it. No
            # (stamp, minute) index: the provider's per-stamp view is a rare query.
            models.UniqueConstraint(fields=["subscription", "minute", "resource_id", "meter"],
                                    name="usage_record_unique_minute",
                                    violation_error_message="A minute is counted once."),
        ]

    def __str__(self):
        return f"{self.resource_id} {self.meter} {self.minute:%Y-%m-%d %H:%M}: {self.quantity}"


class UsageHour(models.Model):
    """The sum of a subscription's usage records of one meter in one hour (``rollup``)."""

    subscription = models.ForeignKey("plans.Subscription", on_delete=models.CASCADE,
                                     related_name="usage_hours")
    stamp = models.ForeignKey("fabric.Stamp", on_delete=models.PROTECT,
                              related_name="usage_hours")
    meter = models.CharField(max_length=32, choices=Meter.choices)
    hour = models.DateTimeField()
    quantity = models.DecimalField(max_digits=24, decimal_places=6)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "hour", "meter"],
                                    name="usage_hour_unique",
                                    violation_error_message="An hour is summed once."),
        ]
        indexes = [models.Index(fields=["stamp", "hour"], name="usage_hour_stamp")]

    def __str__(self):
        return f"{self.subscription_id} {self.meter} {self.hour:%Y-%m-%d %H}h: {self.quantity}"


class MeterCursor(models.Model):
    """Usage of the stamp is collected for every minute before ``collected_until``.

    ``written_until``: no row of the stamp exists from this minute on (advanced in the
    transaction that writes rows), so a minute after it can be inserted without looking
    for rows to replace; one before it (a rerun after a crash) is upserted."""

    stamp = models.OneToOneField("fabric.Stamp", on_delete=models.CASCADE,
                                 related_name="meter_cursor")
    collected_until = models.DateTimeField()
    written_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.stamp_id} until {self.collected_until:%Y-%m-%d %H:%M}"


class MissingState(models.TextChoices):
    MISSING = "missing", "Missing"
    BACKFILLED = "backfilled", "Backfilled"
    UNRECOVERABLE = "unrecoverable", "Unrecoverable"


class MissingUsage(models.Model):
    """Minutes ``[start, end)`` of a stamp whose usage could not be read when due."""

    stamp = models.ForeignKey("fabric.Stamp", on_delete=models.CASCADE,
                              related_name="missing_usage")
    start = models.DateTimeField()
    end = models.DateTimeField()
    state = models.CharField(max_length=16, choices=MissingState.choices,
                             default=MissingState.MISSING)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__gt=models.F("start")),
                                   name="missing_usage_not_empty",
                                   violation_error_message="A missing range holds a minute."),
        ]
        indexes = [models.Index(fields=["stamp", "state"], name="missing_stamp_state")]

    def __str__(self):
        return f"{self.stamp_id} {self.start:%Y-%m-%d %H:%M}-{self.end:%H:%M} {self.state}"


from billing.rating_models import *  # noqa: E402,F403 - the prices, plan periods and invoices
