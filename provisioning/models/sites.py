"""Where a subscription lives on a stamp: its sites (tenant container and edge) and the
external addresses they hold."""

import uuid

from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from fabric.models import Cloud

__all__ = ["AddressState", "ExternalAddress", "Site", "SiteRole", "SiteState"]


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
