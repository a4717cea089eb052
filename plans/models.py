"""What the provider sells (plans, add-ons) and what tenants hold (subscriptions, quota)."""

import uuid
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from base.scoping import RestrictedQuerySet
from fabric.models import Cloud
from fabric.validators import validate_printable
from tenants.models import Tenant

__all__ = ["AddOn", "AddOnKind", "Plan", "PlanState", "QuotaDimension", "QuotaLedger",
           "Subscription", "SubscriptionAddOn", "SubscriptionState"]


class QuotaDimension(models.TextChoices):
    VCPUS = "vcpus", "vCPUs"
    MEMORY_MB = "memory_mb", "Memory (MB)"
    STORAGE_GB = "storage_gb", "Storage (GB)"
    VMS = "vms", "VMs"
    NETWORKS = "networks", "Networks"
    SNAPSHOTS = "snapshots", "Snapshots"


class QuotaFields(models.Model):
    """One limit per quota dimension, as ``quota_<dimension>`` columns."""

    quota_vcpus = models.PositiveIntegerField(default=0)
    quota_memory_mb = models.PositiveIntegerField(default=0)
    quota_storage_gb = models.PositiveIntegerField(default=0)
    quota_vms = models.PositiveIntegerField(default=0)
    quota_networks = models.PositiveIntegerField(default=0)
    quota_snapshots = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True

    def quotas(self) -> dict[str, int]:
        return {d: getattr(self, f"quota_{d}") for d in QuotaDimension.values}


class PlanState(models.TextChoices):
    PUBLIC = "public", "Public"
    PRIVATE = "private", "Private"
    DECOMMISSIONED = "decommissioned", "Decommissioned"


class AddOnKind(models.TextChoices):
    QUOTA = "quota", "Extra quota"
    DR = "dr", "Disaster recovery"


class AddOn(QuotaFields):
    """Something a tenant attaches to a subscription: extra quota, or DR."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True, validators=[validate_printable])
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=8, choices=AddOnKind.choices)
    recovery_cloud = models.ForeignKey(Cloud, on_delete=models.PROTECT, null=True, blank=True,
                                       related_name="recovery_addons")
    rpo_seconds = models.PositiveIntegerField(default=300, help_text="DR: target recovery point.")
    price_monthly = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"),
                                        validators=[MinValueValidator(Decimal("0"))])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(kind=AddOnKind.DR, recovery_cloud__isnull=False)
                           | models.Q(kind=AddOnKind.QUOTA, recovery_cloud__isnull=True)),
                name="addon_recovery_cloud_iff_dr",
                violation_error_message="A DR add-on needs a recovery cloud; "
                                        "a quota add-on has none."),
            models.CheckConstraint(condition=models.Q(price_monthly__gte=0),
                                   name="addon_price_not_negative",
                                   violation_error_message="A price is not negative."),
        ]

    def __str__(self):
        return self.name


class Plan(QuotaFields):
    """What a tenant subscribes to, bound to one cloud."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True, validators=[validate_printable])
    description = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=PlanState.choices, default=PlanState.PRIVATE)
    cloud = models.ForeignKey(Cloud, on_delete=models.PROTECT, related_name="plans")
    templates = models.ManyToManyField("fabric.Template", blank=True, related_name="plans")
    addons = models.ManyToManyField(AddOn, blank=True, related_name="plans")
    offered_to = models.ManyToManyField(
        Tenant, blank=True, related_name="private_plans",
        help_text="Tenants that see this plan while it is private.")
    max_subscriptions = models.PositiveIntegerField(null=True, blank=True,
                                                    help_text="Empty: no limit.")
    max_vm_vcpus = models.PositiveIntegerField(default=16, help_text="Largest VM size allowed.")
    max_vm_memory_mb = models.PositiveIntegerField(default=65536)
    max_vm_disk_gb = models.PositiveIntegerField(default=1024)
    price_monthly = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"),
                                        validators=[MinValueValidator(Decimal("0"))])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["price_monthly", "name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=PlanState.values),
                                   name="plan_state_valid"),
            models.CheckConstraint(condition=models.Q(price_monthly__gte=0),
                                   name="plan_price_not_negative",
                                   violation_error_message="A price is not negative."),
        ]

    def __str__(self):
        return self.name


class SubscriptionState(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    ACTIVE = "active", "Active"
    FAILED = "failed", "Failed"
    SUSPENDED = "suspended", "Suspended"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"


class Subscription(ConcurrentTransitionMixin, models.Model):
    """A tenant's instance of a plan; it owns every resource and its quota ledger."""


    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    name = models.CharField(max_length=100)
    state = FSMField(default=SubscriptionState.PROVISIONING, choices=SubscriptionState.choices,
                     protected=True)
    error = models.TextField(blank=True, help_text="Why its commission failed.")
    addons = models.ManyToManyField(AddOn, through="SubscriptionAddOn", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    state_changed_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "tenant"  # what restrict(tenant) follows

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "state"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(state__in=SubscriptionState.values),
                                   name="subscription_state_valid",
                                   violation_error_message="Not a state of a subscription."),
        ]

    def __str__(self):
        return f"{self.name} ({self.plan})"

    TERMINAL_STATES = frozenset({SubscriptionState.DELETED})

    @transition(field=state, source=SubscriptionState.PROVISIONING,
                target=SubscriptionState.ACTIVE)
    def mark_active(self):
        """Its commission has finished: it takes resources."""
        self.error = ""

    @transition(field=state, source=SubscriptionState.PROVISIONING,
                target=SubscriptionState.FAILED)
    def mark_failed(self, error: str = ""):
        """Its commission failed and was undone; a retry may cure it."""
        self.error = error

    @transition(field=state, source=SubscriptionState.FAILED,
                target=SubscriptionState.PROVISIONING)
    def retry_commission(self):
        self.error = ""

    @transition(field=state, source=SubscriptionState.ACTIVE, target=SubscriptionState.SUSPENDED)
    def suspend(self):
        """No new resources, running VMs are stopped."""

    @transition(field=state, source=SubscriptionState.SUSPENDED, target=SubscriptionState.ACTIVE)
    def resume(self):
        pass

    @transition(field=state, source=[SubscriptionState.PROVISIONING, SubscriptionState.ACTIVE,
                                     SubscriptionState.FAILED, SubscriptionState.SUSPENDED],
                target=SubscriptionState.DELETING)
    def start_deleting(self):
        pass

    @transition(field=state, source=SubscriptionState.DELETING, target=SubscriptionState.DELETED)
    def mark_deleted(self):
        pass


class SubscriptionAddOn(models.Model):
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE,
                                     related_name="addon_links")
    addon = models.ForeignKey(AddOn, on_delete=models.PROTECT, related_name="subscription_links")
    attached_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "subscription__tenant"  # what restrict(tenant) follows

    class Meta:
        ordering = ["attached_at"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "addon"],
                                    name="subscription_addon_once",
                                    violation_error_message="This add-on is already attached."),
        ]

    def __str__(self):
        return f"{self.addon_id} on {self.subscription_id}"


class QuotaLedger(models.Model):
    """One row per subscription and dimension.

    Reservations are single conditional updates (``used = used + d WHERE used + d <=
    limit``) on these rows, taken in a fixed order; the CHECK keeps ``used`` from going
    negative whatever a release does. A limit may be lowered below ``used``: that only
    blocks new reservations.
    """

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE,
                                     related_name="quota_rows")
    dimension = models.CharField(max_length=16, choices=QuotaDimension.choices)
    limit = models.BigIntegerField()
    used = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["subscription", "dimension"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "dimension"],
                                    name="quota_ledger_unique_dimension"),
            models.CheckConstraint(condition=models.Q(used__gte=0),
                                   name="quota_ledger_used_not_negative",
                                   violation_error_message="Quota use cannot go below zero."),
            models.CheckConstraint(condition=models.Q(limit__gte=0),
                                   name="quota_ledger_limit_not_negative"),
        ]

    def __str__(self):
        return f"{self.subscription_id} {self.dimension}: {self.used}/{self.limit}"
