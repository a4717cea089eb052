"""Use cases of the catalog and of subscriptions. The only place that changes them."""

from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from base import events
from base.errors import Conflict, ErrorCode, Invalid, NotFound, QuotaExceeded
from base.events import Event
from fabric.drivers import Capability
from fabric.models import Cloud, Template
from plans import quota
from plans.models import (
    AddOn,
    AddOnKind,
    Plan,
    PlanState,
    QuotaDimension,
    Subscription,
    SubscriptionAddOn,
    SubscriptionAddOnPeriod,
    SubscriptionPlanPeriod,
    SubscriptionState,
)
from tenants.models import Tenant, User

__all__ = [
    "attach_addon",
    "change_plan",
    "configure_burst",
    "detach_addon",
    "record_burst_spending",
    "limits_of",
    "resume_subscription",
    "save_addon",
    "save_plan",
    "subscribe",
    "suspend_subscription",
    "visible_plans",
]

LIVE_STATES = (SubscriptionState.PROVISIONING, SubscriptionState.ACTIVE, SubscriptionState.FAILED,
               SubscriptionState.SUSPENDED, SubscriptionState.DELETING)


# --- Catalog --------------------------------------------------------------------------

def _replication_refused(stamp) -> str:
    return (f"Stamp '{stamp.name}' ({stamp.driver}) cannot replicate VMs, so it can take "
            "no part in disaster recovery.")


def _check_dr_addons(cloud: Cloud, addons: Iterable[AddOn]) -> None:
    dr = [a for a in addons if a.kind == AddOnKind.DR]
    if dr and cloud.stamp.lacks(Capability.REPLICATION):
        raise Invalid(
            "A plan whose cloud's stamp cannot replicate offers no DR add-on. "
            + _replication_refused(cloud.stamp),
            errors={"addons": [f"'{a.name}' needs replication from the plan's stamp."
                               for a in dr]})
    wrong = [a.name for a in dr if a.recovery_cloud.stamp_id == cloud.stamp_id]
    if wrong:
        raise Invalid(
            "A DR add-on's recovery cloud must be on a different stamp than the plan's cloud.",
            errors={"addons": [f"'{n}' recovers to the stamp the plan runs on." for n in wrong]})
    unmapped = {}
    for addon in dr:
        mapped = set(addon.network_mappings.values_list("primary_network", flat=True))
        missing = [n for n in cloud.provider_networks if n not in mapped]
        if missing:
            unmapped[addon.name] = missing
    if unmapped:
        raise Invalid(
            "Every provider network of the plan's cloud must be mapped by its DR add-ons.",
            errors={"addons": [f"'{name}' does not map: {', '.join(missing)}."
                               for name, missing in unmapped.items()]})


def _check_templates(cloud: Cloud, templates: Iterable[Template]) -> None:
    wrong = [t.name for t in templates if t.cloud_id != cloud.pk]
    if wrong:
        raise Invalid("Templates must belong to the plan's cloud.",
                      errors={"templates": [f"'{n}' is not in cloud '{cloud.name}'."
                                            for n in wrong]})


@transaction.atomic
def save_plan(plan: Plan | None, *, fields: dict[str, Any], templates=None, addons=None,
              offered_to=None, acting_user: User) -> Plan:
    """Create or change a plan; quota changes reach every live subscription's limits."""
    creating = plan is None
    plan = plan or Plan()
    before = {} if creating else events.values(plan, [*_PLAN_FIELDS, *_PLAN_LINKS])
    if not creating and "cloud" in fields and fields["cloud"].pk != plan.cloud_id \
            and plan.subscriptions.filter(state__in=LIVE_STATES).exists():
        raise Conflict("The cloud of a plan with subscriptions cannot change.",
                       errors={"cloud": ["The plan has live subscriptions."]})
    for name, value in fields.items():
        setattr(plan, name, value)
    cloud = plan.cloud
    templates = list(templates) if templates is not None else (
        [] if creating else list(plan.templates.all()))
    addons = list(addons) if addons is not None else (
        [] if creating else list(plan.addons.all()))
    _check_templates(cloud, templates)
    _check_dr_addons(cloud, addons)
    plan.full_clean(exclude=["cloud"])
    plan.save()
    plan.templates.set(templates)
    plan.addons.set(addons)
    if offered_to is not None:
        plan.offered_to.set(offered_to)
    if not creating:
        for subscription in plan.subscriptions.filter(state__in=LIVE_STATES):
            quota.set_limits(subscription, limits_of(subscription))
    events.record(Event.PLAN_CREATED if creating else Event.PLAN_CHANGED, plan,
                  acting_user=acting_user, before=before,
                  after=events.values(plan, [*_PLAN_FIELDS, *_PLAN_LINKS]))
    return plan


def _concrete(model) -> list[str]:
    return [f.name for f in model._meta.concrete_fields if not f.primary_key]


_PLAN_FIELDS = _concrete(Plan)
_PLAN_LINKS = ("templates", "addons", "offered_to")


@transaction.atomic
def save_addon(addon: AddOn | None, *, fields: dict[str, Any], acting_user: User) -> AddOn:
    creating = addon is None
    addon = addon or AddOn()
    before = {} if creating else events.values(addon)
    for name, value in fields.items():
        setattr(addon, name, value)
    if addon.kind == AddOnKind.DR and addon.recovery_cloud_id is None:
        raise Invalid("A DR add-on needs a recovery cloud.",
                      errors={"recovery_cloud": ["Required for a DR add-on."]})
    if addon.kind == AddOnKind.QUOTA and addon.recovery_cloud_id is not None:
        raise Invalid("A quota add-on has no recovery cloud.",
                      errors={"recovery_cloud": ["Only DR add-ons have a recovery cloud."]})
    if addon.kind == AddOnKind.DR and addon.recovery_cloud.stamp.lacks(Capability.REPLICATION):
        stamp = addon.recovery_cloud.stamp
        raise Invalid("A DR add-on's recovery cloud must be on a stamp that replicates. "
                      + _replication_refused(stamp),
                      errors={"recovery_cloud": [
                          f"Cloud '{addon.recovery_cloud.name}' is on stamp '{stamp.name}', "
                          f"whose {stamp.driver} driver has no replication."]})
    if addon.kind == AddOnKind.DR and any(addon.quotas().values()):
        raise Invalid("A DR add-on adds no quota.", errors={"quotas": ["Leave them at 0."]})
    if not creating:
        for plan in addon.plans.select_related("cloud"):
            _check_dr_addons(plan.cloud, [addon])
    addon.full_clean()
    addon.save()
    if not creating and addon.kind == AddOnKind.QUOTA:
        for subscription in Subscription.objects.filter(addons=addon, state__in=LIVE_STATES):
            quota.set_limits(subscription, limits_of(subscription))
    events.record(Event.ADDON_CREATED if creating else Event.ADDON_CHANGED, addon,
                  acting_user=acting_user, before=before, after=events.values(addon))
    return addon


# --- Subscriptions --------------------------------------------------------------------

def visible_plans(tenant: Tenant | None) -> QuerySet[Plan]:
    """Public plans, and private plans offered to this tenant."""
    offered = Q(state=PlanState.PRIVATE, offered_to=tenant) if tenant else Q(pk__in=[])
    return Plan.objects.filter(Q(state=PlanState.PUBLIC) | offered).distinct()


def limits_of(subscription: Subscription) -> dict[str, int]:
    limits = subscription.plan.quotas()
    for link in subscription.addon_links.select_related("addon"):
        if link.addon.kind == AddOnKind.QUOTA:
            for dimension, amount in link.addon.quotas().items():
                limits[dimension] += amount
    return limits


@transaction.atomic
def subscribe(tenant: Tenant, *, plan_id, name: str, acting_user: User) -> Subscription:
    """Subscribe the tenant to a plan it can see, within the plan's subscription limit.

    Only the subscription's rows: ``provisioning.lifecycle.subscribe`` commissions it."""
    # Locking the plan row serialises concurrent subscribers of the same plan, so
    # max_subscriptions holds under any concurrency.
    plan = (Plan.objects.select_for_update(of=("self",)).select_related("cloud__stamp")
            .filter(pk=plan_id).filter(pk__in=_plan_ids_seen_by(tenant)).first())
    if plan is None:
        raise NotFound("No such plan.")
    if plan.state == PlanState.DECOMMISSIONED:
        raise Conflict("This plan is decommissioned and takes no new subscriptions.",
                       code=ErrorCode.PLAN_DECOMMISSIONED)
    if not plan.cloud.stamp.enabled:
        # A retired stamp: nothing new on its clouds. (Tenants never learn of stamps.)
        raise Conflict("This plan takes no new subscriptions for now: the provider has "
                       "closed its cloud to new work.", code=ErrorCode.STAMP_DISABLED)
    if plan.max_subscriptions is not None:
        taken = plan.subscriptions.filter(state__in=LIVE_STATES).count()
        if taken >= plan.max_subscriptions:
            raise Conflict("This plan has no free subscriptions left.", code=ErrorCode.PLAN_FULL)
    name = (name or "").strip() or plan.name
    subscription = Subscription.objects.create(tenant=tenant, plan=plan, name=name)
    SubscriptionPlanPeriod.objects.create(subscription=subscription, plan=plan,
                                          start=subscription.created_at)
    quota.set_limits(subscription, plan.quotas())
    events.record(Event.SUBSCRIPTION_CREATED, subscription, acting_user=acting_user,
                  after=events.values(subscription, ["plan", "name", "state"]))
    return subscription


def _plan_ids_seen_by(tenant: Tenant):
    # Decommissioned plans stay visible to the API caller who knows them, so that
    # subscribing answers 409 rather than pretending the plan never existed.
    return (Plan.objects.filter(Q(state__in=[PlanState.PUBLIC, PlanState.DECOMMISSIONED])
                                | Q(offered_to=tenant)).values("pk"))


def _lock(subscription: Subscription) -> Subscription:
    return Subscription.objects.select_for_update().get(pk=subscription.pk)


@transaction.atomic
def attach_addon(subscription: Subscription, *, addon_id, acting_user: User,
                 precondition: Callable[[Subscription, AddOn], None] | None = None
                 ) -> SubscriptionAddOn:
    """Link an add-on of the plan to the subscription and raise its limits.

    ``precondition`` (the add-on's own check, from the layer that knows it) runs after
    the catalog's checks and before anything is written.
    """
    subscription = _lock(subscription)
    addon = subscription.plan.addons.filter(pk=addon_id).first()
    if addon is None:
        raise Invalid("This add-on is not offered with the subscription's plan.",
                      errors={"addon": ["Not offered with this plan."]})
    # A provisioning subscription takes a quota add-on at once (an add-on with work of its
    # own on the fabric says in its precondition whether it can wait).
    if subscription.state not in (SubscriptionState.ACTIVE, SubscriptionState.PROVISIONING):
        raise Conflict(f"The subscription is {subscription.state}.",
                       code=ErrorCode.SUBSCRIPTION_STATE)
    if subscription.addon_links.filter(addon=addon).exists():
        raise Conflict("This add-on is already attached.", code=ErrorCode.ADDON_ATTACHED)
    if precondition is not None:
        precondition(subscription, addon)
    link = SubscriptionAddOn.objects.create(subscription=subscription, addon=addon)
    SubscriptionAddOnPeriod.objects.create(subscription=subscription, addon=addon,
                                           start=link.attached_at)
    quota.set_limits(subscription, limits_of(subscription))
    events.record(Event.ADDON_ATTACHED, link, acting_user=acting_user,
                  after={"addon": str(addon.pk), "name": addon.name})
    return link


@transaction.atomic
def detach_addon(subscription: Subscription, *, addon_id, acting_user: User,
                 precondition: Callable[[SubscriptionAddOn], None] | None = None
                 ) -> SubscriptionAddOn:
    """Unlink an add-on; ``precondition`` is the add-on's own check, as for attaching."""
    subscription = _lock(subscription)
    link = subscription.addon_links.filter(addon_id=addon_id).select_related("addon").first()
    if link is None:
        raise NotFound("This add-on is not attached.")
    if precondition is not None:
        precondition(link)
    link.delete()
    subscription.addon_periods.filter(addon_id=addon_id, end__isnull=True).update(
        end=timezone.now())
    # Limits may now be below use: allowed, it only blocks new reservations.
    quota.set_limits(subscription, limits_of(subscription))
    events.record(Event.ADDON_DETACHED, link, acting_user=acting_user,
                  before={"addon": str(link.addon_id), "name": link.addon.name})
    return link


def _transition(subscription: Subscription, verb: str, transition, *, event: Event,
                acting_user: User) -> Subscription:
    subscription = _lock(subscription)
    before = {"state": subscription.state}
    try:
        transition(subscription)
    except TransitionNotAllowed as exc:
        raise Conflict(f"A {subscription.state} subscription cannot be {verb}.",
                       code=ErrorCode.SUBSCRIPTION_STATE) from exc
    subscription.save()
    events.record(event, subscription, acting_user=acting_user, before=before,
                  after={"state": subscription.state})
    return subscription


@transaction.atomic
def suspend_subscription(subscription: Subscription, *, acting_user: User) -> Subscription:
    return _transition(subscription, "suspended", Subscription.suspend,
                       event=Event.SUBSCRIPTION_SUSPENDED, acting_user=acting_user)


@transaction.atomic
def resume_subscription(subscription: Subscription, *, acting_user: User) -> Subscription:
    return _transition(subscription, "resumed", Subscription.resume,
                       event=Event.SUBSCRIPTION_RESUMED, acting_user=acting_user)



# --- Plan changes and burst -----------------------------------------------------------

@transaction.atomic
def change_plan(subscription: Subscription, *, plan_id, acting_user: User | None,
                at: datetime | None = None) -> Subscription:
    """Move a subscription to another plan of the same cloud (its resources stay where they
    are). The old plan's period ends at the minute the new one starts, so proration bills
    each plan exactly its share and the day of the switch once."""
    at = at or timezone.now()
    subscription = _lock(subscription)
    plan = visible_plans(subscription.tenant).filter(pk=plan_id).first()
    if plan is None:
        raise NotFound("No such plan.")
    if plan.pk == subscription.plan_id:
        return subscription
    if plan.cloud_id != subscription.plan.cloud_id:
        raise Conflict("A subscription changes only to a plan of the same cloud.",
                       errors={"plan": ["The plan runs on another cloud."]})
    if subscription.state not in (SubscriptionState.ACTIVE, SubscriptionState.PROVISIONING):
        raise Conflict(f"The subscription is {subscription.state}.",
                       code=ErrorCode.SUBSCRIPTION_STATE)
    before = {"plan": str(subscription.plan_id), "burst_enabled": subscription.burst_enabled}
    old_plan = subscription.plan
    subscription.plan = plan
    limits = limits_of(subscription)
    room = quota.burst_room(subscription, fresh=False)  # the new plan's, as it stands now
    ceiling = {d: limits.get(d, 0) + room.get(d, 0) for d in QuotaDimension.values}
    over = {row.dimension: {"used": row.used, "limit": ceiling[row.dimension]}
            for row in subscription.quota_rows.select_for_update()
            if row.used > ceiling[row.dimension]}
    if over:
        subscription.plan = old_plan
        raise QuotaExceeded("The new plan's quota would not hold what the subscription "
                            f"uses: {', '.join(sorted(over))}.", errors=over)
    open_period = subscription.plan_periods.filter(end__isnull=True).first()
    if open_period is not None:
        open_period.end = at
        open_period.save(update_fields=["end"])
    SubscriptionPlanPeriod.objects.create(subscription=subscription, plan=plan, start=at)
    subscription.plan = plan
    if not plan.offers_burst:
        subscription.burst_enabled = False
    subscription.save(update_fields=["plan", "burst_enabled", "state_changed_at"])
    quota.set_limits(subscription, limits)
    events.record(Event.SUBSCRIPTION_PLAN_CHANGED, subscription, acting_user=acting_user,
                  before=before, after={"plan": str(plan.pk),
                                        "burst_enabled": subscription.burst_enabled})
    return subscription


@transaction.atomic
def configure_burst(subscription: Subscription, *, enabled: bool,
                    monthly_cap: Decimal | None, acting_user: User) -> Subscription:
    """Opt a subscription in to its plan's burst room with a monthly cap, or out.

    Opting out closes the room to new reservations; what already runs above the quota
    keeps running (and is billed while it does)."""
    subscription = _lock(subscription)
    before = {"burst_enabled": subscription.burst_enabled,
              "burst_monthly_cap": _text(subscription.burst_monthly_cap)}
    if enabled and not subscription.plan.offers_burst:
        raise Invalid("The subscription's plan offers no burst.",
                      errors={"burst.enabled": ["The plan offers no burst."]})
    if enabled and monthly_cap is None:
        raise Invalid("Burst needs a monthly cap.",
                      errors={"burst.monthly_cap": ["Required to opt in."]})
    subscription.burst_enabled = enabled
    if monthly_cap is not None:
        subscription.burst_monthly_cap = monthly_cap
    subscription.burst_capped = _is_capped(subscription)
    subscription.save(update_fields=["burst_enabled", "burst_monthly_cap", "burst_capped",
                                     "state_changed_at"])
    events.record(Event.SUBSCRIPTION_BURST_CHANGED, subscription, acting_user=acting_user,
                  before=before, after={"burst_enabled": subscription.burst_enabled,
                                        "burst_monthly_cap": _text(subscription.burst_monthly_cap)})
    return subscription


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _is_capped(subscription: Subscription) -> bool:
    cap = subscription.burst_monthly_cap
    return cap is not None and subscription.burst_spent >= cap


@transaction.atomic
def record_burst_spending(subscription_id, spent: Decimal) -> bool:
    """Keep the running month's burst spending (from the rating pass) and close the burst
    room once it reaches the cap; a new month (spending back to 0) opens it again.
    Running VMs are not touched. Returns True when this call capped the subscription."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription_id)
    was_capped = subscription.burst_capped
    subscription.burst_spent = spent
    subscription.burst_capped = _is_capped(subscription)
    subscription.save(update_fields=["burst_spent", "burst_capped"])
    capped_now = subscription.burst_capped and not was_capped
    if capped_now:
        # The tenant is told (its activity); running VMs are not touched.
        events.record(Event.BURST_CAPPED, subscription, acting_user=None,
                      spent=spent, cap=subscription.burst_monthly_cap)
    return capped_now
