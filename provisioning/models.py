"""Jobs of the runbook engine and what a subscription has on a stamp: its sites, networks,
VMs and checkpoints."""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from base.scoping import RestrictedQuerySet
from fabric.models import Cloud, Stamp, Template
from provisioning.sizing import VmSize

__all__ = [
    "AddressState",
    "ExternalAddress",
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
    "Snapshot",
    "SnapshotState",
    "StepState",
    "VM_LIVE_STATES",
    "VirtualMachine",
    "VmState",
]

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

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "tenant"  # what restrict(tenant) follows

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

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "subscription__tenant"  # what restrict(tenant) follows

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

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "subscription__tenant"  # what restrict(tenant) follows

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
        return VmSize.of(self).usage()

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

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "vm__subscription__tenant"  # what restrict(tenant) follows

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


