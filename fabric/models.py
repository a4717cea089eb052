"""The fabric catalog: stamps, clouds carved out of them, their capacity ledger, templates
and the stamps' health history."""

import uuid
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from base.fields import EncryptedJSONField
from fabric.validators import (
    AMOUNT,
    ipv4_network,
    validate_endpoint,
    validate_external_pool,
    validate_network_names,
    validate_printable,
    validate_tenant_network,
)

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
    region = models.CharField(max_length=63, validators=[validate_printable])
    driver = models.CharField(max_length=16, choices=DriverKind.choices)
    endpoint = models.CharField(max_length=255, help_text="An http(s) URL for stampsim, a "
                                "libvirt URI for libvirt.")
    credentials = EncryptedJSONField(blank=True, default=dict)
    enabled = models.BooleanField(
        default=True, help_text="Off: nothing new is placed on its clouds (no new "
        "subscriptions, no new DR protection); what runs there keeps running.")
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

    def clean(self):
        if not self.endpoint or self.driver not in DriverKind.values:
            return  # the fields' own errors say it
        try:
            validate_endpoint(self.driver, self.endpoint)
        except ValidationError as exc:
            raise ValidationError({"endpoint": exc.messages}) from None

    @property
    def capabilities(self):
        """What its driver can do beyond VMs, networks and checkpoints (``Capability``)."""
        from fabric.drivers import capabilities_of

        return capabilities_of(self.driver)

    def lacks(self, *needed) -> list[str]:
        """The capabilities of ``needed`` this stamp has not, sorted (empty: it has all)."""
        return sorted(str(c) for c in set(needed) - self.capabilities)

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
    vcpus = models.PositiveIntegerField(validators=AMOUNT)
    memory_mb = models.PositiveIntegerField(validators=AMOUNT)
    storage_gb = models.PositiveIntegerField(validators=AMOUNT)
    vms = models.PositiveIntegerField(validators=AMOUNT)
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
        validators=[validate_tenant_network],
        help_text="CIDR of the routed network a new subscription gets: a private IPv4 "
                  "range, /16 to /29.",
    )
    external_pool_cidr = models.CharField(
        max_length=43,
        default="203.0.113.0/24",
        validators=[validate_external_pool],
        help_text="External addresses for the subscriptions' source NAT: an IPv4 network "
                  "apart from the default network; its first address is the router.",
    )
    provider_networks = models.JSONField(
        default=default_provider_networks,
        blank=True,
        validators=[validate_network_names],
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
            models.CheckConstraint(
                condition=models.Q(vcpus__gte=1, memory_mb__gte=1, storage_gb__gte=1,
                                   vms__gte=1),
                name="cloud_capacity_positive",
                violation_error_message="A cloud has at least one of each: vCPU, MB of "
                                        "memory, GB of storage, VM.",
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        # Source NAT maps the default network to an external address: the two must not
        # overlap. (Each field's own rules already ran; skip what they refused.)
        try:
            default = ipv4_network(self.default_network_cidr)
            pool = ipv4_network(self.external_pool_cidr)
        except ValidationError:
            return
        if default.overlaps(pool):
            raise ValidationError({"external_pool_cidr": [
                f"Overlaps the default network {default}: the external addresses must be "
                "apart from the tenants' network."]})

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
    name = models.CharField(max_length=100, validators=[validate_printable])
    os = models.CharField(max_length=100, validators=[validate_printable])
    cloud = models.ForeignKey(Cloud, on_delete=models.PROTECT, related_name="templates")
    image = models.CharField(max_length=200, validators=[validate_printable],
                             help_text="Image reference on the fabric.")
    min_vcpus = models.PositiveIntegerField(default=1, validators=AMOUNT)
    min_memory_mb = models.PositiveIntegerField(default=512, validators=AMOUNT)
    min_disk_gb = models.PositiveIntegerField(default=10, validators=AMOUNT)

    class Meta:
        ordering = ["cloud__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cloud", "name"], name="template_name_per_cloud"),
            models.CheckConstraint(
                condition=models.Q(min_vcpus__gte=1, min_memory_mb__gte=1, min_disk_gb__gte=1),
                name="template_minimums_positive",
                violation_error_message="A template needs at least one vCPU, one MB of "
                                        "memory and one GB of disk.",
            ),
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
