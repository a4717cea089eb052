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

__all__ = ["BURST_DIMENSIONS", "AddOn", "AddOnKind", "Plan", "PlanState", "QuotaDimension",
           "QuotaLedger", "Subscription", "SubscriptionAddOn", "SubscriptionAddOnPeriod",
           "SubscriptionPlanPeriod", "SubscriptionState"]


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


# The dimensions a plan may offer burst room in: those metered by the minute (a network
# is not).
BURST_DIMENSIONS = (QuotaDimension.VCPUS, QuotaDimension.MEMORY_MB, QuotaDimension.STORAGE_GB,
                    QuotaDimension.VMS, QuotaDimension.SNAPSHOTS)


class BurstFields(models.Model):
    """Burst room above the quota per dimension (``burst_<dimension>``) and what a unit of
    it costs per started minute (``burst_price_<dimension>``)."""

    burst_vcpus = models.PositiveIntegerField(default=0)
    burst_memory_mb = models.PositiveIntegerField(default=0)
    burst_storage_gb = models.PositiveIntegerField(default=0)
    burst_vms = models.PositiveIntegerField(default=0)
    burst_snapshots = models.PositiveIntegerField(default=0)
    burst_price_vcpus = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal("0"),
                                            validators=[MinValueValidator(Decimal("0"))])
    burst_price_memory_mb = models.DecimalField(max_digits=14, decimal_places=6,
                                                default=Decimal("0"),
                                                validators=[MinValueValidator(Decimal("0"))])
    burst_price_storage_gb = models.DecimalField(max_digits=14, decimal_places=6,
                                                 default=Decimal("0"),
                                                 validators=[MinValueValidator(Decimal("0"))])
    burst_price_vms = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal("0"),
                                          validators=[MinValueValidator(Decimal("0"))])
    burst_price_snapshots = models.DecimalField(max_digits=14, decimal_places=6,
                                                default=Decimal("0"),
                                                validators=[MinValueValidator(Decimal("0"))])

    class Meta:
        abstract = True

    def burst_limits(self) -> dict[str, int]:
        return {d: getattr(self, f"burst_{d}") for d in BURST_DIMENSIONS}

    def burst_prices(self) -> dict[str, Decimal]:
        return {d: getattr(self, f"burst_price_{d}") for d in BURST_DIMENSIONS}

    @property
    def offers_burst(self) -> bool:
        return any(self.burst_limits().values())

    @property
    def burst(self) -> dict | None:
        """The API's ``burst``: ``{limits, price_per_minute}``, or None without any room."""
        if not self.offers_burst:
            return None
        return {"limits": self.burst_limits(), "price_per_minute": self.burst_prices()}

    @burst.setter
    def burst(self, value: dict | None) -> None:
        value = value or {}
        limits, prices = value.get("limits") or {}, value.get("price_per_minute") or {}
        for dimension in BURST_DIMENSIONS:
            setattr(self, f"burst_{dimension}", limits.get(dimension, 0))
            setattr(self, f"burst_price_{dimension}", prices.get(dimension, Decimal("0")))


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


class Plan(QuotaFields, BurstFields):
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
    meter_stopped_vms = models.BooleanField(
        default=True,
        help_text="Stopped VMs are metered for their vCPUs, memory and VM-minutes too (and "
                  "count toward burst). Off: only while running. Disks, snapshots and DR "
                  "protection are metered either way.")
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
    # Burst (API.md "Usage, burst and invoices"): the owner opts in with a monthly cap; the
    # rating pass keeps this month's burst spending here and sets ``burst_capped`` once it
    # reaches the cap, which closes the burst room to new reservations (``plans.quota``).
    burst_enabled = models.BooleanField(default=False)
    burst_monthly_cap = models.DecimalField(max_digits=10, decimal_places=2, null=True,
                                            blank=True,
                                            validators=[MinValueValidator(Decimal("0"))])
    burst_spent = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"),
                                      help_text="Burst spending of the running month.")
    burst_capped = models.BooleanField(default=False)
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
            models.CheckConstraint(
                condition=models.Q(burst_enabled=False) | models.Q(burst_monthly_cap__gte=0),
                name="subscription_burst_needs_cap",
                violation_error_message="Burst needs a monthly cap that is not negative."),
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


class SubscriptionPlanPeriod(models.Model):
    """Which plan a subscription had from ``start`` until ``end`` (open: still has it).

    Written on subscribe and on a change of plan; proration of the monthly price reads it.
    A subscription's periods do not overlap: a change ends one at the minute the next
    starts, so the day of a switch is billed once.
    """

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE,
                                     related_name="plan_periods")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscription_periods")
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "subscription__tenant"

    class Meta:
        ordering = ["subscription", "start"]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__isnull=True)
                                   | models.Q(end__gt=models.F("start")),
                                   name="plan_period_ends_after_start",
                                   violation_error_message="A period ends after it starts."),
            models.UniqueConstraint(fields=["subscription"], condition=models.Q(end__isnull=True),
                                    name="plan_period_one_open",
                                    violation_error_message="A subscription has one plan now."),
        ]

    def __str__(self):
        return f"{self.subscription_id}: {self.plan_id} from {self.start} to {self.end}"


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


class SubscriptionAddOnPeriod(models.Model):
    """An add-on attached to a subscription from ``start`` until ``end`` (open: still is).

    The link itself goes on detach; this stays, so a month bills the add-on's share of
    the minutes it was attached."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE,
                                     related_name="addon_periods")
    addon = models.ForeignKey(AddOn, on_delete=models.PROTECT, related_name="subscription_periods")
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    tenant_path = "subscription__tenant"

    class Meta:
        ordering = ["subscription", "start"]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__isnull=True)
                                   | models.Q(end__gte=models.F("start")),
                                   name="addon_period_ends_after_start",
                                   violation_error_message="A period ends after it starts."),
            models.UniqueConstraint(fields=["subscription", "addon"],
                                    condition=models.Q(end__isnull=True),
                                    name="addon_period_one_open",
                                    violation_error_message="This add-on is attached once."),
        ]

    def __str__(self):
        return f"{self.addon_id} on {self.subscription_id} from {self.start} to {self.end}"


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
