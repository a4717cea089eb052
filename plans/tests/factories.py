"""Factories of what the provider sells and what tenants hold: plans, quota add-ons and
subscriptions with their quota ledger.

Plans and add-ons are saved by ``plans.services`` (the catalog's rules hold: a plan's
templates are in its cloud, its DR add-ons recover elsewhere and map its networks). A
subscription gets its ledger rows from ``plans.quota.set_limits``, as ``subscribe`` gives
them, without a commission: a test that needs its site makes one
(``provisioning.tests.factories.SiteFactory``). DR add-ons are the DR add-on's:
``dr_addon.tests.factories.DrAddOnFactory``.

    PlanFactory(templates=[template], addons=[addon], quota_vms=10)
    SubscriptionFactory(tenant=tenant, plan=plan)
"""

from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from fabric.tests.factories import CloudFactory
from plans import quota, services
from plans.models import (
    AddOn,
    AddOnKind,
    Plan,
    PlanState,
    Subscription,
    SubscriptionPlanPeriod,
    SubscriptionState,
)
from tenants.tests.factories import TenantFactory

__all__ = ["AddOnFactory", "PlanFactory", "SubscriptionFactory"]


class AddOnFactory(DjangoModelFactory):
    """A quota add-on: 4 more vCPUs and 2 more VMs."""

    class Meta:
        model = AddOn

    name = factory.Sequence(lambda n: f"Extra {n}")
    kind = AddOnKind.QUOTA
    quota_vcpus = 4
    quota_vms = 2
    price_monthly = Decimal("5.00")

    @classmethod
    def _create(cls, model_class, *args, **fields):
        return services.save_addon(None, fields=fields, acting_user=None)


class PlanFactory(DjangoModelFactory):
    """A public plan on a cloud of its own, with the catalog fixture's quotas.

    ``templates``, ``addons`` and ``offered_to`` are lists, saved with the plan."""

    class Meta:
        model = Plan

    name = factory.Sequence(lambda n: f"Plan {n}")
    state = PlanState.PUBLIC
    cloud = factory.SubFactory(CloudFactory)
    quota_vcpus = 8
    quota_memory_mb = 16384
    quota_storage_gb = 200
    quota_vms = 4
    quota_networks = 2
    quota_snapshots = 4
    price_monthly = Decimal("9.00")

    @classmethod
    def _create(cls, model_class, *args, templates=(), addons=(), offered_to=None, **fields):
        return services.save_plan(None, fields=fields, templates=templates, addons=addons,
                                  offered_to=offered_to, acting_user=None)


class SubscriptionFactory(DjangoModelFactory):
    """An active subscription of a new tenant, with the plan's (and attached quota
    add-ons') limits in its ledger and nothing used."""

    class Meta:
        model = Subscription

    tenant = factory.SubFactory(TenantFactory)
    plan = factory.SubFactory(PlanFactory)
    name = factory.Sequence(lambda n: f"subscription {n}")
    state = SubscriptionState.ACTIVE

    @classmethod
    def _create(cls, model_class, *args, **fields):
        subscription = super()._create(model_class, *args, **fields)
        SubscriptionPlanPeriod.objects.create(subscription=subscription, plan=subscription.plan,
                                              start=subscription.created_at)
        quota.set_limits(subscription, services.limits_of(subscription))
        return subscription
