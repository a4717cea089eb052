"""DR add-on set-up: how the provider maps primary networks to recovery networks."""

import uuid

from django.db import models

from base.scoping import RestrictedQuerySet

__all__ = ["ActiveSite", "DrReport", "DrillKind", "NetworkMapping", "ProtectedNetwork",
           "ProtectedVm", "Protection", "ProtectionState"]


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


class Protection(models.Model):
    """A subscription protected by a DR add-on: where it recovers and where it runs now."""


    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.OneToOneField("plans.Subscription", on_delete=models.CASCADE,
                                        related_name="protection")
    addon = models.ForeignKey("plans.AddOn", on_delete=models.PROTECT, related_name="+")
    recovery_site = models.ForeignKey("provisioning.Site", on_delete=models.PROTECT,
                                      related_name="+")
    state = models.CharField(max_length=16, choices=ProtectionState.choices,
                             default=ProtectionState.PROTECTING)
    active_site = models.CharField(max_length=16, choices=ActiveSite.choices,
                                   default=ActiveSite.PRIMARY)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "subscription__tenant"  # what restrict(tenant) follows

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"DR of {self.subscription_id} ({self.state}, on {self.active_site})"


class ProtectedVm(models.Model):
    """One VM's replication: its id on each site and how fresh the replica is."""

    protection = models.ForeignKey(Protection, on_delete=models.CASCADE, related_name="vms")
    vm = models.OneToOneField("provisioning.VirtualMachine", on_delete=models.CASCADE,
                              related_name="protection")
    state = models.CharField(max_length=16, default="enabling")
    primary_fabric_id = models.CharField(max_length=64)
    recovery_fabric_id = models.CharField(max_length=64, blank=True)
    sequence = models.PositiveIntegerField(default=0)
    last_sync_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["vm__name"]

    def __str__(self):
        return f"{self.vm_id} -> {self.recovery_fabric_id or '?'}"


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
