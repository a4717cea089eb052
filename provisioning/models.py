"""The fabric side of the catalog: stamps, clouds carved out of them, templates."""

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from portal.fields import EncryptedJSONField

__all__ = [
    "AddressState",
    "CapacityDimension",
    "Cloud",
    "CloudCapacity",
    "DriverKind",
    "ExternalAddress",
    "Health",
    "JOB_TERMINAL_STATES",
    "Job",
    "JobState",
    "JobStep",
    "Network",
    "NetworkAddress",
    "NetworkState",
    "Site",
    "SiteRole",
    "SiteState",
    "Stamp",
    "StampCheck",
    "StepState",
    "Snapshot",
    "SnapshotState",
    "Template",
    "VM_LIVE_STATES",
    "VirtualMachine",
    "VmState",
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


# --- Runbook jobs ---------------------------------------------------------------------


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    COMPENSATING = "compensating", "Undoing"
    ROLLED_BACK = "rolled_back", "Rolled back"
    CANCELLED = "cancelled", "Cancelled"


JOB_TERMINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.ROLLED_BACK, JobState.CANCELLED}
)


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    UNDOING = "undoing", "Undoing"
    UNDONE = "undone", "Undone"
    SKIPPED = "skipped", "Skipped"


class Job(ConcurrentTransitionMixin, models.Model):
    """One run of a runbook. It is also the outbox: written in the request's transaction,
    published to the stamp's queue after commit, and re-published by the relay if the
    publish never happened."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    runbook = models.CharField(max_length=100, db_index=True)
    runbook_version = models.PositiveIntegerField(default=1)
    state = FSMField(default=JobState.QUEUED, choices=JobState.choices, protected=True)
    inputs = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    outputs = models.JSONField(default=dict, encoder=DjangoJSONEncoder,
                               help_text="What the steps produced, by key.")
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    stamp = models.ForeignKey(Stamp, on_delete=models.PROTECT, related_name="jobs")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.SET_NULL, null=True,
                               blank=True, related_name="jobs")
    subscription = models.ForeignKey("plans.Subscription", on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="jobs")
    resource_type = models.CharField(max_length=64, blank=True)
    resource_id = models.CharField(max_length=64, blank=True, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="+")
    run = models.PositiveIntegerField(default=1, help_text="Raised by each retry; part of "
                                      "every idempotency key, so a retry starts afresh.")
    attempts = models.PositiveIntegerField(default=0,
                                           help_text="Deliveries to a worker in this run.")
    max_attempts = models.PositiveIntegerField(default=5)
    cancel_requested = models.BooleanField(default=False)
    published_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True,
                                        help_text="Last sign of life of the worker running it.")
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "heartbeat_at"]),
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["resource_type", "resource_id"]),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=JobState.values),
                                   name="job_state_valid"),
        ]

    def __str__(self):
        return f"{self.runbook} {self.id} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in JOB_TERMINAL_STATES

    @transition(field=state, source=[JobState.QUEUED, JobState.RUNNING], target=JobState.RUNNING)
    def start(self):
        """A worker claims the job (again, after a lost worker)."""

    @transition(field=state, source=JobState.RUNNING, target=JobState.SUCCEEDED)
    def succeed(self):
        pass

    @transition(field=state, source=[JobState.RUNNING, JobState.COMPENSATING],
                target=JobState.COMPENSATING)
    def compensate(self):
        pass

    @transition(field=state, source=JobState.COMPENSATING, target=JobState.ROLLED_BACK)
    def roll_back(self):
        pass

    @transition(field=state, source=[JobState.QUEUED, JobState.RUNNING, JobState.COMPENSATING],
                target=JobState.FAILED)
    def fail(self):
        """Undo itself failed, or the job gave up: what it left behind is in the error."""

    @transition(field=state, source=[JobState.QUEUED, JobState.COMPENSATING],
                target=JobState.CANCELLED)
    def cancel(self):
        pass

    @transition(field=state, source=[JobState.FAILED, JobState.ROLLED_BACK, JobState.CANCELLED],
                target=JobState.QUEUED)
    def requeue(self):
        pass


class JobStep(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    state = models.CharField(max_length=16, choices=StepState.choices,
                             default=StepState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    log = models.TextField(blank=True)
    output = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="job_step_unique_index"),
        ]

    def __str__(self):
        return f"{self.index}. {self.name} ({self.state})"


# --- Where a subscription lives on a stamp --------------------------------------------


class SiteRole(models.TextChoices):
    PRIMARY = "primary", "Primary"
    RECOVERY = "recovery", "Recovery"


class SiteState(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"


class Site(models.Model):
    """A subscription's tenant container on one stamp, with its edge: gateway, external
    address, default routed network, outbound firewall and source-NAT rules."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey("plans.Subscription", on_delete=models.CASCADE,
                                     related_name="sites")
    cloud = models.ForeignKey(Cloud, on_delete=models.PROTECT, related_name="sites")
    role = models.CharField(max_length=16, choices=SiteRole.choices, default=SiteRole.PRIMARY)
    is_active = models.BooleanField(default=True,
                                    help_text="The subscription's resources run here now.")
    state = models.CharField(max_length=16, choices=SiteState.choices,
                             default=SiteState.PROVISIONING)
    container_id = models.CharField(max_length=64, blank=True)
    gateway_id = models.CharField(max_length=64, blank=True)
    external_ip = models.GenericIPAddressField(null=True, blank=True)
    network_id = models.CharField(max_length=64, blank=True)
    network_cidr = models.CharField(max_length=43, blank=True)
    firewall_rule_id = models.CharField(max_length=64, blank=True)
    nat_rule_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "role"], condition=~models.Q(state="deleted"),
                name="site_one_live_per_role"),
        ]

    def __str__(self):
        return f"{self.subscription_id} on {self.cloud} ({self.role}, {self.state})"


class AddressState(models.TextChoices):
    ALLOCATED = "allocated", "Allocated"
    HELD_BY_FABRIC = "fabric", "Taken on the fabric"


class ExternalAddress(models.Model):
    """An address of a cloud's external pool that is in use. Free addresses have no row."""

    cloud = models.ForeignKey(Cloud, on_delete=models.CASCADE, related_name="external_addresses")
    address = models.GenericIPAddressField()
    state = models.CharField(max_length=16, choices=AddressState.choices,
                             default=AddressState.ALLOCATED)
    site = models.ForeignKey(Site, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="+")
    allocated_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cloud", "address"]
        constraints = [
            models.UniqueConstraint(fields=["cloud", "address"], name="external_address_once"),
        ]

    def __str__(self):
        return f"{self.address} ({self.state})"


# --- Tenant resources -----------------------------------------------------------------


class NetworkState(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    READY = "ready", "Ready"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    FAILED = "failed", "Failed"


class Network(models.Model):
    """A tenant virtual network behind the subscription's gateway."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey("plans.Subscription", on_delete=models.CASCADE,
                                     related_name="networks")
    name = models.CharField(max_length=63)
    cidr = models.CharField(max_length=43)
    gateway_address = models.GenericIPAddressField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=NetworkState.choices,
                             default=NetworkState.PROVISIONING)
    is_default = models.BooleanField(default=False,
                                     help_text="Made by the commission; not counted in quota.")
    fabric_id = models.CharField(max_length=64, blank=True)
    quota_held = models.BooleanField(default=True, help_text="Counts in the quota ledger now.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "name"],
                                    condition=~models.Q(state="deleted"),
                                    name="network_name_unique_live",
                                    violation_error_message="A network with this name exists."),
        ]

    def __str__(self):
        return f"{self.name} ({self.cidr})"


class VmState(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    STARTING = "starting", "Starting"
    STOPPING = "stopping", "Stopping"
    RESIZING = "resizing", "Resizing"
    RESTORING = "restoring", "Restoring a checkpoint"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    FAILED = "failed", "Failed"


VM_LIVE_STATES = frozenset(VmState.values) - {VmState.DELETED}


class VirtualMachine(ConcurrentTransitionMixin, models.Model):
    """A tenant VM. Its state is an FSM; every transition that touches the fabric is a
    job, and the transitional states say one is in flight."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey("plans.Subscription", on_delete=models.CASCADE,
                                     related_name="vms")
    name = models.CharField(max_length=63)
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="vms")
    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="vms")
    vcpus = models.PositiveIntegerField()
    memory_mb = models.PositiveIntegerField()
    disk_gb = models.PositiveIntegerField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    state = FSMField(default=VmState.PROVISIONING, choices=VmState.choices, protected=True)
    fabric_id = models.CharField(max_length=64, blank=True)
    quota_held = models.BooleanField(default=True, help_text="Counts in the quota ledger now.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    state_changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["subscription", "state"])]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "name"],
                                    condition=~models.Q(state="deleted"),
                                    name="vm_name_unique_live",
                                    violation_error_message="A VM with this name exists."),
            models.CheckConstraint(condition=models.Q(vcpus__gte=1) & models.Q(memory_mb__gte=1)
                                   & models.Q(disk_gb__gte=1), name="vm_size_positive"),
        ]

    def __str__(self):
        return self.name

    def usage(self) -> dict[str, int]:
        return {"vcpus": self.vcpus, "memory_mb": self.memory_mb, "storage_gb": self.disk_gb,
                "vms": 1}

    @transition(field=state, source=VmState.PROVISIONING, target=VmState.RUNNING)
    def mark_provisioned(self):
        pass

    @transition(field=state, source=VmState.STOPPED, target=VmState.STARTING)
    def start(self):
        pass

    @transition(field=state, source=VmState.RUNNING, target=VmState.STOPPING)
    def stop(self):
        pass

    @transition(field=state, source=VmState.RUNNING, target=VmState.STARTING)
    def restart(self):
        pass

    @transition(field=state, source=[VmState.RUNNING, VmState.STOPPED], target=VmState.RESIZING)
    def resize(self):
        pass

    @transition(field=state, source=[VmState.RUNNING, VmState.STOPPED],
                target=VmState.RESTORING)
    def restore(self):
        pass

    @transition(field=state, source=[VmState.RUNNING, VmState.STOPPED, VmState.FAILED],
                target=VmState.DELETING)
    def start_deleting(self):
        pass

    @transition(field=state, source="*", target=VmState.RUNNING)
    def settle_running(self):
        """A job ended with the VM powered on."""

    @transition(field=state, source="*", target=VmState.STOPPED)
    def settle_stopped(self):
        """A job ended with the VM powered off."""

    @transition(field=state, source="*", target=VmState.FAILED)
    def mark_failed(self):
        pass

    @transition(field=state, source=VmState.DELETING, target=VmState.DELETED)
    def mark_deleted(self):
        pass


class SnapshotState(models.TextChoices):
    CREATING = "creating", "Creating"
    READY = "ready", "Ready"
    RESTORING = "restoring", "Restoring"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    FAILED = "failed", "Failed"


class Snapshot(models.Model):
    """A checkpoint of a VM."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(max_length=63)
    state = models.CharField(max_length=16, choices=SnapshotState.choices,
                             default=SnapshotState.CREATING)
    fabric_id = models.CharField(max_length=64, blank=True)
    quota_held = models.BooleanField(default=True, help_text="Counts in the quota ledger now.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name


class NetworkAddress(models.Model):
    """An address of a tenant network held by a VM (the network's IPAM)."""

    network = models.ForeignKey(Network, on_delete=models.CASCADE, related_name="addresses")
    address = models.GenericIPAddressField()
    vm = models.ForeignKey(VirtualMachine, on_delete=models.SET_NULL, null=True, blank=True,
                           related_name="+")
    allocated_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["network", "address"]
        constraints = [
            models.UniqueConstraint(fields=["network", "address"],
                                    name="network_address_once"),
        ]

    def __str__(self):
        return self.address


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
