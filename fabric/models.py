"""The fabric catalog: stamps, clouds carved out of them, their capacity ledger, templates
and the stamps' health history."""

import uuid
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models

from base.fields import EncryptedJSONField

__all__ = [
    "CapacityDimension",
    "Cloud",
    "CloudCapacity",
    "DriverKind",
    "Health",
    "Stamp",
    "StampCheck",
    "Template",
    "default_provider_networks",
]


class DriverKind(models.TextChoices):
    SIMULATED = "simulated", "stampsim (HTTP)"
    LIBVIRT = "libvirt", "libvirt"
    MEMORY = "memory", "in-process (tests)"


class Health(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    HEALTHY = "healthy", "Healthy"
    UNREACHABLE = "unreachable", "Unreachable"


class Stamp(models.Model):
    """A management endpoint for one fabric. Its credentials are encrypted at rest."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.SlugField(max_length=63, unique=True)
    region = models.CharField(max_length=63)
    driver = models.CharField(max_length=16, choices=DriverKind.choices)
    endpoint = models.CharField(max_length=255)
    credentials = EncryptedJSONField(blank=True, default=dict)
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.UNKNOWN)
    health_detail = models.TextField(blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    capacity = models.JSONField(
        default=dict, blank=True, help_text="Totals the fabric reported at the last check."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(driver__in=DriverKind.values), name="stamp_driver_valid"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def queue(self) -> str:
        """The Celery queue of this stamp's jobs."""
        return f"stamp.{self.name}"


class CapacityDimension(models.TextChoices):
    VCPUS = "vcpus", "vCPUs"
    MEMORY_MB = "memory_mb", "Memory (MB)"
    STORAGE_GB = "storage_gb", "Storage (GB)"
    VMS = "vms", "VMs"


def default_provider_networks() -> list[str]:
    return ["external"]


class Cloud(models.Model):
    """A slice of a stamp's capacity that plans are bound to."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.SlugField(max_length=63, unique=True)
    stamp = models.ForeignKey(Stamp, on_delete=models.PROTECT, related_name="clouds")
    vcpus = models.PositiveIntegerField()
    memory_mb = models.PositiveIntegerField()
    storage_gb = models.PositiveIntegerField()
    vms = models.PositiveIntegerField()
    overcommit_cpu = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("1"))],
    )
    overcommit_memory = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("1"))],
    )
    default_network_cidr = models.CharField(
        max_length=43,
        default="10.0.0.0/24",
        help_text="CIDR of the routed network a new subscription gets.",
    )
    external_pool_cidr = models.CharField(
        max_length=43,
        default="203.0.113.0/24",
        help_text="External addresses for the subscriptions' source NAT.",
    )
    provider_networks = models.JSONField(
        default=default_provider_networks,
        blank=True,
        help_text="Names of the provider's networks in this cloud (DR maps them).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(overcommit_cpu__gte=1) & models.Q(overcommit_memory__gte=1),
                name="cloud_overcommit_at_least_one",
                violation_error_message="Overcommit ratios are at least 1.",
            ),
        ]

    def __str__(self):
        return self.name

    def limits(self) -> dict[str, int]:
        """What may be allocated, overcommit included."""
        return {
            CapacityDimension.VCPUS: int(self.vcpus * self.overcommit_cpu),
            CapacityDimension.MEMORY_MB: int(self.memory_mb * self.overcommit_memory),
            CapacityDimension.STORAGE_GB: self.storage_gb,
            CapacityDimension.VMS: self.vms,
        }


class CloudCapacity(models.Model):
    """The provider-side ledger: one row per cloud and dimension, reserved like quota."""

    cloud = models.ForeignKey(Cloud, on_delete=models.CASCADE, related_name="capacity_rows")
    dimension = models.CharField(max_length=16, choices=CapacityDimension.choices)
    limit = models.BigIntegerField()
    used = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["cloud", "dimension"]
        constraints = [
            models.UniqueConstraint(
                fields=["cloud", "dimension"], name="cloud_capacity_unique_dimension"
            ),
            models.CheckConstraint(
                condition=models.Q(used__gte=0),
                name="cloud_capacity_used_not_negative",
                violation_error_message="Allocation cannot go below zero.",
            ),
        ]

    def __str__(self):
        return f"{self.cloud} {self.dimension}: {self.used}/{self.limit}"


class Template(models.Model):
    """A gallery image of a cloud that VMs are created from."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    os = models.CharField(max_length=100)
    cloud = models.ForeignKey(Cloud, on_delete=models.PROTECT, related_name="templates")
    image = models.CharField(max_length=200, help_text="Image reference on the fabric.")
    min_vcpus = models.PositiveIntegerField(default=1)
    min_memory_mb = models.PositiveIntegerField(default=512)
    min_disk_gb = models.PositiveIntegerField(default=10)

    class Meta:
        ordering = ["cloud__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cloud", "name"], name="template_name_per_cloud"),
        ]

    def __str__(self):
        return f"{self.name} ({self.cloud})"



class StampCheck(models.Model):
    """One health check of a stamp: the history the provider sees."""

    stamp = models.ForeignKey(Stamp, on_delete=models.CASCADE, related_name="checks")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    health = models.CharField(max_length=16, choices=Health.choices)
    detail = models.TextField(blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    capacity = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["stamp", "-at"])]

    def __str__(self):
        return f"{self.stamp_id} {self.health} at {self.at:%H:%M:%S}"
