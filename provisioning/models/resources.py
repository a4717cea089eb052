"""The tenant's resources on a stamp: networks (with their addresses), VMs, checkpoints."""

import uuid

from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from base.scoping import RestrictedQuerySet
from fabric.models import Template
from provisioning.sizing import VmSize

__all__ = ["VM_LIVE_STATES", "Network", "NetworkAddress", "NetworkState", "Snapshot",
           "SnapshotState", "VirtualMachine", "VmState"]


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
    # No index of its own: VMs are listed per subscription, on (subscription, -created_at);
    # one on created_at alone led the planner to walk all VMs newest first for one of them.
    created_at = models.DateTimeField(auto_now_add=True)
    state_changed_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "subscription__tenant"  # what restrict(tenant) follows
    TERMINAL_STATES = frozenset({VmState.DELETED})
    TRANSITIONAL_STATES = frozenset({VmState.PROVISIONING, VmState.STARTING, VmState.STOPPING,
                                     VmState.RESIZING, VmState.RESTORING, VmState.DELETING})

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["subscription", "state"]),
                   models.Index(fields=["subscription", "-created_at"])]
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
