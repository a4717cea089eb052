"""DR add-on set-up: how the provider maps primary networks to recovery networks; what is
protected, and how.

A protection and each VM's replica are state machines (``protected=True``: only their
named transitions change them; a CHECK refuses other values), as in ``provisioning.models``.
"""

import uuid

from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from base.scoping import RestrictedQuerySet

__all__ = ["ActiveSite", "DrReport", "DrillKind", "NetworkMapping", "ProtectedNetwork",
           "ProtectedVm", "ProtectedVmState", "Protection", "ProtectionState"]


class NetworkMapping(models.Model):
    """A provider network of the plan's cloud and its counterpart on the recovery cloud."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    addon = models.ForeignKey("plans.AddOn", on_delete=models.CASCADE,
                              related_name="network_mappings")
    primary_network = models.CharField(max_length=100)
    recovery_network = models.CharField(max_length=100)

    class Meta:
        ordering = ["addon", "primary_network"]
        constraints = [
            models.UniqueConstraint(fields=["addon", "primary_network"],
                                    name="network_mapping_once_per_primary",
                                    violation_error_message="This primary network is already "
                                                            "mapped for the add-on."),
        ]

    def __str__(self):
        return f"{self.primary_network} -> {self.recovery_network}"


class ProtectionState(models.TextChoices):
    PROTECTING = "protecting", "Enabling protection"
    PROTECTED = "protected", "Protected"
    FAILING_OVER = "failing_over", "Failing over"
    FAILED_OVER = "failed_over", "Running on the recovery site"
    FAILING_BACK = "failing_back", "Failing back"
    UNPROTECTING = "unprotecting", "Disabling protection"
    UNPROTECTED = "unprotected", "Not protected"
    ERROR = "error", "Needs attention"


class ActiveSite(models.TextChoices):
    PRIMARY = "primary", "Primary"
    RECOVERY = "recovery", "Recovery"


class Protection(ConcurrentTransitionMixin, models.Model):
    """A subscription protected by a DR add-on: where it recovers and where it runs now.

    ``dr.unprotect`` deletes the row when it has finished: nothing moves a protection to
    ``unprotected`` today, which stays its terminal state."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.OneToOneField("plans.Subscription", on_delete=models.CASCADE,
                                        related_name="protection")
    addon = models.ForeignKey("plans.AddOn", on_delete=models.PROTECT, related_name="+")
    recovery_site = models.ForeignKey("provisioning.Site", on_delete=models.PROTECT,
                                      related_name="+")
    state = FSMField(max_length=16, choices=ProtectionState.choices,
                     default=ProtectionState.PROTECTING, protected=True)
    active_site = models.CharField(max_length=16, choices=ActiveSite.choices,
                                   default=ActiveSite.PRIMARY)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "subscription__tenant"  # what restrict(tenant) follows
    TERMINAL_STATES = frozenset({ProtectionState.UNPROTECTED})
    TRANSITIONAL_STATES = frozenset({ProtectionState.PROTECTING, ProtectionState.FAILING_OVER,
                                     ProtectionState.FAILING_BACK,
                                     ProtectionState.UNPROTECTING})

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=ProtectionState.values),
                                   name="protection_state_valid",
                                   violation_error_message="Not a state of a DR protection."),
        ]

    def __str__(self):
        return f"DR of {self.subscription_id} ({self.state}, on {self.active_site})"

    @transition(field=state, source=ProtectionState.PROTECTING, target=ProtectionState.PROTECTED)
    def mark_protected(self):
        """``dr.protect`` replicates every VM."""

    @transition(field=state, source=ProtectionState.PROTECTING, target=ProtectionState.ERROR)
    def mark_error(self):
        """``dr.protect`` failed and was undone (or cancelled)."""

    @transition(field=state, source=[ProtectionState.ERROR, ProtectionState.PROTECTING],
                target=ProtectionState.PROTECTING)
    def retry(self):
        """A provider runs ``dr.protect`` again (still ``protecting`` if it had given up
        without undoing)."""

    @transition(field=state, source=ProtectionState.PROTECTED,
                target=ProtectionState.FAILING_OVER)
    def start_failover(self):
        pass

    @transition(field=state, source=ProtectionState.FAILING_OVER,
                target=ProtectionState.FAILED_OVER)
    def mark_failed_over(self):
        """The subscription runs on its recovery site."""

    @transition(field=state, source=ProtectionState.FAILED_OVER,
                target=ProtectionState.FAILING_BACK)
    def start_failback(self):
        pass

    @transition(field=state, source=ProtectionState.FAILING_BACK,
                target=ProtectionState.PROTECTED)
    def mark_failed_back(self):
        """Home again, and replicating forward again."""

    @transition(field=state, source=[ProtectionState.PROTECTED, ProtectionState.ERROR],
                target=ProtectionState.UNPROTECTING)
    def start_unprotecting(self):
        """The tenant detached the DR add-on: not while a protect, failover or failback
        is under way (their jobs would meet a protection being removed)."""


class ProtectedVmState(models.TextChoices):
    ENABLING = "enabling", "Enabling replication"
    PROTECTED = "protected", "Protected"
    FAILED_OVER = "failed_over", "Failed over"


class ProtectedVm(ConcurrentTransitionMixin, models.Model):
    """One VM's replication: its id on each site and how fresh the replica is. A replica
    ends by its row being deleted (DR removed, or the VM deleted)."""

    protection = models.ForeignKey(Protection, on_delete=models.CASCADE, related_name="vms")
    vm = models.OneToOneField("provisioning.VirtualMachine", on_delete=models.CASCADE,
                              related_name="protection")
    state = FSMField(max_length=16, choices=ProtectedVmState.choices,
                     default=ProtectedVmState.ENABLING, protected=True)
    primary_fabric_id = models.CharField(max_length=64)
    recovery_fabric_id = models.CharField(max_length=64, blank=True)
    sequence = models.PositiveIntegerField(default=0)
    last_sync_at = models.DateTimeField(null=True, blank=True)

    TERMINAL_STATES: frozenset[str] = frozenset()

    class Meta:
        ordering = ["vm__name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=ProtectedVmState.values),
                                   name="protected_vm_state_valid",
                                   violation_error_message="Not a state of a VM's replica."),
        ]

    def __str__(self):
        return f"{self.vm_id} -> {self.recovery_fabric_id or '?'}"

    @transition(field=state, source=[ProtectedVmState.ENABLING, ProtectedVmState.PROTECTED],
                target=ProtectedVmState.PROTECTED)
    def mark_protected(self):
        """Replication is enabled (``protected`` already: a retried job enabled it again)."""

    @transition(field=state, source=[ProtectedVmState.ENABLING, ProtectedVmState.PROTECTED,
                                     ProtectedVmState.FAILED_OVER],
                target=ProtectedVmState.FAILED_OVER)
    def fail_over(self):
        """A failover fails over every replica, however fresh (``failed_over`` already: a
        retried failover does the step again)."""

    @transition(field=state, source=ProtectedVmState.FAILED_OVER,
                target=ProtectedVmState.PROTECTED)
    def protect_again(self):
        """Failback: the recovery copy is the replica again."""


class ProtectedNetwork(models.Model):
    """A tenant network recreated on the recovery site from its definition."""

    protection = models.ForeignKey(Protection, on_delete=models.CASCADE, related_name="networks")
    network = models.OneToOneField("provisioning.Network", on_delete=models.CASCADE,
                                   related_name="protection")
    primary_fabric_id = models.CharField(max_length=64)
    recovery_fabric_id = models.CharField(max_length=64)

    def __str__(self):
        return f"{self.network_id} -> {self.recovery_fabric_id}"


class DrillKind(models.TextChoices):
    TEST = "test_failover", "Test failover"
    PLANNED = "planned", "Planned failover"
    UNPLANNED = "unplanned", "Unplanned failover"
    FAILBACK = "failback", "Failback"


class DrReport(models.Model):
    """What a test failover, failover or failback did, for the tenant and the provider."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    protection = models.ForeignKey(Protection, on_delete=models.CASCADE, related_name="reports")
    kind = models.CharField(max_length=16, choices=DrillKind.choices)
    job = models.ForeignKey("provisioning.Job", on_delete=models.SET_NULL, null=True,
                            related_name="+")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, blank=True)
    data_loss_seconds = models.FloatField(null=True, blank=True,
                                          help_text="Unplanned failover: the window lost.")
    details = models.JSONField(default=dict)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"{self.kind} {self.started_at:%Y-%m-%d %H:%M}"
