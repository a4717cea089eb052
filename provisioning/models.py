"""Jobs of the runbook engine and what a subscription has on a stamp: its sites, networks,
VMs and checkpoints.

Every lifecycle is a state machine (``protected=True``: only its named transitions change
it; a CHECK refuses other values) with declared ``TERMINAL_STATES`` and the
``TRANSITIONAL_STATES`` that say a job is in flight (``provisioning.stuck`` fails one left
there with no job). Transitions that start work have strict sources: the preconditions of
the tenant's actions. Those that end a job also accept ``failed``: the sweeper may have
given up on a resource whose job a provider then retries, and the job knows the fabric.
"""

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
    TERMINAL_STATES = JOB_TERMINAL_STATES

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "heartbeat_at"]),
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["resource_type", "resource_id"]),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=JobState.values),
                                   name="job_state_valid",
                                   violation_error_message="Not a state of a job."),
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


class Site(ConcurrentTransitionMixin, models.Model):
    """A subscription's tenant container on one stamp, with its edge: gateway, external
    address, default routed network, outbound firewall and source-NAT rules. The
    commission (or ``dr.protect``) builds it; the decommission (or ``dr.unprotect``)
    removes it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey("plans.Subscription", on_delete=models.CASCADE,
                                     related_name="sites")
    cloud = models.ForeignKey(Cloud, on_delete=models.PROTECT, related_name="sites")
    role = models.CharField(max_length=16, choices=SiteRole.choices, default=SiteRole.PRIMARY)
    is_active = models.BooleanField(default=True,
                                    help_text="The subscription's resources run here now.")
    state = FSMField(max_length=16, choices=SiteState.choices, default=SiteState.PROVISIONING,
                     protected=True)
    container_id = models.CharField(max_length=64, blank=True)
    gateway_id = models.CharField(max_length=64, blank=True)
    external_ip = models.GenericIPAddressField(null=True, blank=True)
    network_id = models.CharField(max_length=64, blank=True)
    network_cidr = models.CharField(max_length=43, blank=True)
    firewall_rule_id = models.CharField(max_length=64, blank=True)
    nat_rule_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    state_changed_at = models.DateTimeField(auto_now=True)  # the stuck sweeper's clock

    TERMINAL_STATES = frozenset({SiteState.DELETED})
    TRANSITIONAL_STATES = frozenset({SiteState.PROVISIONING, SiteState.DELETING})

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "role"], condition=~models.Q(state="deleted"),
                name="site_one_live_per_role"),
            models.CheckConstraint(condition=models.Q(state__in=SiteState.values),
                                   name="site_state_valid",
                                   violation_error_message="Not a state of a site."),
        ]

    def __str__(self):
        return f"{self.subscription_id} on {self.cloud} ({self.role}, {self.state})"

    @transition(field=state, source=SiteState.PROVISIONING, target=SiteState.READY)
    def mark_ready(self):
        """Its commission (or ``dr.protect``) built it."""

    @transition(field=state, source=[SiteState.PROVISIONING, SiteState.DELETING],
                target=SiteState.FAILED)
    def mark_failed(self):
        """Building it failed and was undone, or it was stuck with no job to finish it."""

    @transition(field=state, source=[SiteState.FAILED, SiteState.PROVISIONING],
                target=SiteState.PROVISIONING)
    def retry(self):
        """A provider runs its build job again (still ``provisioning`` if that job had
        given up without undoing)."""

    @transition(field=state, source=[SiteState.PROVISIONING, SiteState.READY, SiteState.FAILED],
                target=SiteState.DELETING)
    def start_deleting(self):
        """A decommission (or ``dr.unprotect``) starts removing it."""

    @transition(field=state, source=[SiteState.DELETING, SiteState.FAILED],
                target=SiteState.DELETED)
    def mark_deleted(self):
        """Nothing of it is left on the fabric."""


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


class Network(ConcurrentTransitionMixin, models.Model):
    """A tenant virtual network behind the subscription's gateway."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey("plans.Subscription", on_delete=models.CASCADE,
                                     related_name="networks")
    name = models.CharField(max_length=63)
    cidr = models.CharField(max_length=43)
    gateway_address = models.GenericIPAddressField(null=True, blank=True)
    state = FSMField(max_length=16, choices=NetworkState.choices,
                     default=NetworkState.PROVISIONING, protected=True)
    is_default = models.BooleanField(default=False,
                                     help_text="Made by the commission; not counted in quota.")
    fabric_id = models.CharField(max_length=64, blank=True)
    quota_held = models.BooleanField(default=True, help_text="Counts in the quota ledger now.")
    created_at = models.DateTimeField(auto_now_add=True)
    state_changed_at = models.DateTimeField(auto_now=True)  # the stuck sweeper's clock

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "subscription__tenant"  # what restrict(tenant) follows
    TERMINAL_STATES = frozenset({NetworkState.DELETED})
    TRANSITIONAL_STATES = frozenset({NetworkState.PROVISIONING, NetworkState.DELETING})

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "name"],
                                    condition=~models.Q(state="deleted"),
                                    name="network_name_unique_live",
                                    violation_error_message="A network with this name exists."),
            models.CheckConstraint(condition=models.Q(state__in=NetworkState.values),
                                   name="network_state_valid",
                                   violation_error_message="Not a state of a network."),
        ]

    def __str__(self):
        return f"{self.name} ({self.cidr})"

    @transition(field=state, source=NetworkState.PROVISIONING, target=NetworkState.READY)
    def mark_ready(self):
        pass

    @transition(field=state, source=[NetworkState.PROVISIONING, NetworkState.DELETING],
                target=NetworkState.FAILED)
    def mark_failed(self):
        """Its create job was undone, or it was stuck with no job to finish it."""

    @transition(field=state, source=[NetworkState.FAILED, NetworkState.PROVISIONING],
                target=NetworkState.PROVISIONING)
    def retry_create(self):
        """A provider runs its create job again."""

    @transition(field=state, source=[NetworkState.READY, NetworkState.FAILED],
                target=NetworkState.DELETING)
    def start_deleting(self):
        pass

    @transition(field=state, source=[NetworkState.DELETING, NetworkState.FAILED],
                target=NetworkState.DELETED)
    def mark_deleted(self):
        pass

    @transition(field=state, source=[NetworkState.PROVISIONING, NetworkState.READY,
                                     NetworkState.DELETING, NetworkState.FAILED],
                target=NetworkState.DELETED)
    def forget(self):
        """The decommission removed everything the subscription had on the fabric."""


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

# Where a job's end may find a VM it settles: the state its own action set, a settled power
# state (a retried job whose rollback had settled the VM already) or ``failed`` (see the
# module's docstring). Not while it is being created or deleted: those jobs settle it.
_SETTLES_FROM = [VmState.STARTING, VmState.STOPPING, VmState.RESIZING, VmState.RESTORING,
                 VmState.RUNNING, VmState.STOPPED, VmState.FAILED]


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
    TERMINAL_STATES = frozenset({VmState.DELETED})
    TRANSITIONAL_STATES = frozenset({VmState.PROVISIONING, VmState.STARTING, VmState.STOPPING,
                                     VmState.RESIZING, VmState.RESTORING, VmState.DELETING})

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
            models.CheckConstraint(condition=models.Q(state__in=VmState.values),
                                   name="vm_state_valid",
                                   violation_error_message="Not a state of a VM."),
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

    @transition(field=state, source=_SETTLES_FROM, target=VmState.RUNNING)
    def settle_running(self):
        """A job ended with the VM powered on."""

    @transition(field=state, source=_SETTLES_FROM, target=VmState.STOPPED)
    def settle_stopped(self):
        """A job ended with the VM powered off."""

    @transition(field=state, source=_SETTLES_FROM, target=VmState.RUNNING)
    def switch_site(self):
        """The DR add-on failed it over (or back): it runs on the other site now."""

    @transition(field=state, source=sorted(TRANSITIONAL_STATES), target=VmState.FAILED)
    def mark_failed(self):
        """Its create job was undone, or it was stuck with no job to finish it (the tenant
        may delete it, a provider may retry that job)."""

    @transition(field=state, source=[VmState.FAILED, VmState.PROVISIONING],
                target=VmState.PROVISIONING)
    def retry_create(self):
        """A provider runs its create job again (still ``provisioning`` if that job had
        given up without undoing)."""

    @transition(field=state, source=[VmState.DELETING, VmState.FAILED], target=VmState.DELETED)
    def mark_deleted(self):
        pass

    @transition(field=state, source=sorted(VM_LIVE_STATES), target=VmState.DELETED)
    def forget(self):
        """The decommission removed everything the subscription had on the fabric."""


class SnapshotState(models.TextChoices):
    CREATING = "creating", "Creating"
    READY = "ready", "Ready"
    RESTORING = "restoring", "Restoring"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    FAILED = "failed", "Failed"


class Snapshot(ConcurrentTransitionMixin, models.Model):
    """A checkpoint of a VM."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(max_length=63)
    state = FSMField(max_length=16, choices=SnapshotState.choices,
                     default=SnapshotState.CREATING, protected=True)
    fabric_id = models.CharField(max_length=64, blank=True)
    quota_held = models.BooleanField(default=True, help_text="Counts in the quota ledger now.")
    created_at = models.DateTimeField(auto_now_add=True)
    state_changed_at = models.DateTimeField(auto_now=True)  # the stuck sweeper's clock

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "vm__subscription__tenant"  # what restrict(tenant) follows
    TERMINAL_STATES = frozenset({SnapshotState.DELETED})
    TRANSITIONAL_STATES = frozenset({SnapshotState.CREATING, SnapshotState.RESTORING,
                                     SnapshotState.DELETING})

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=SnapshotState.values),
                                   name="snapshot_state_valid",
                                   violation_error_message="Not a state of a checkpoint."),
        ]

    def __str__(self):
        return self.name

    @transition(field=state, source=[SnapshotState.CREATING, SnapshotState.FAILED],
                target=SnapshotState.READY)
    def mark_ready(self):
        """Taken (``failed`` too: its create job has no retry hook, a retry ends here)."""

    @transition(field=state, source=sorted(TRANSITIONAL_STATES), target=SnapshotState.FAILED)
    def mark_failed(self):
        """Its create job was undone, or it was stuck with no job to finish it."""

    @transition(field=state, source=SnapshotState.READY, target=SnapshotState.RESTORING)
    def start_restoring(self):
        pass

    @transition(field=state, source=[SnapshotState.RESTORING, SnapshotState.READY,
                                     SnapshotState.FAILED], target=SnapshotState.READY)
    def finish_restoring(self):
        """The restore ended, either way (``ready`` already: a retried restore ends again)."""

    @transition(field=state, source=[SnapshotState.READY, SnapshotState.FAILED],
                target=SnapshotState.DELETING)
    def start_deleting(self):
        pass

    @transition(field=state, source=[SnapshotState.DELETING, SnapshotState.FAILED],
                target=SnapshotState.DELETED)
    def mark_deleted(self):
        pass

    @transition(field=state, source=[SnapshotState.CREATING, SnapshotState.READY,
                                     SnapshotState.RESTORING, SnapshotState.DELETING,
                                     SnapshotState.FAILED], target=SnapshotState.DELETED)
    def forget(self):
        """Its VM was deleted, or the decommission removed everything."""


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


