"""Factories of the DR add-on: DR add-ons with their network mappings, protections,
protected VMs and reports. (Why factories live in each app: see
``tenants.tests.factories``.)

    addon = DrAddOnFactory()                   # recovers to a cloud on a stamp of its own
    protection = ProtectionFactory(subscription=subscription, addon=addon)
    ProtectedVmFactory(protection=protection, last_sync_at=an_instant)
    DrReportFactory(protection=protection, started_at=an_hour_ago, outcome="passed")
"""

from decimal import Decimal

import factory
import time_machine
from factory.django import DjangoModelFactory

from dr_addon import services
from dr_addon.models import (
    DrillKind,
    DrReport,
    NetworkMapping,
    ProtectedVm,
    Protection,
    ProtectionState,
)
from fabric.tests.factories import CloudFactory
from plans.models import AddOnKind
from plans.tests.factories import AddOnFactory, SubscriptionFactory
from provisioning.models import VmState
from provisioning.tests.factories import SiteFactory, VirtualMachineFactory

__all__ = ["DrAddOnFactory", "DrReportFactory", "NetworkMappingFactory", "ProtectedVmFactory",
           "ProtectionFactory"]


class NetworkMappingFactory(DjangoModelFactory):
    class Meta:
        model = NetworkMapping

    addon = factory.SubFactory("dr_addon.tests.factories.DrAddOnFactory", mapping=None)
    primary_network = "external"
    recovery_network = "external"

    @classmethod
    def _create(cls, model_class, *args, **fields):
        return services.save_mapping(None, fields=fields, acting_user=None)


class DrAddOnFactory(AddOnFactory):
    """A DR add-on with a 5 min RPO target, recovering to a cloud on a stamp of its own and
    mapping the provider's ``external`` network, so that any plan may offer it."""

    class Meta:
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"DR {n}")
    kind = AddOnKind.DR
    recovery_cloud = factory.SubFactory(CloudFactory)
    rpo_seconds = 300
    quota_vcpus = 0
    quota_vms = 0
    price_monthly = Decimal("10.00")
    mapping = factory.RelatedFactory(NetworkMappingFactory, factory_related_name="addon")


class ProtectionFactory(DjangoModelFactory):
    """A subscription protected by a DR add-on, on its primary site, with its recovery site
    ready on the add-on's recovery cloud."""

    class Meta:
        model = Protection

    subscription = factory.SubFactory(SubscriptionFactory)
    addon = factory.SubFactory(DrAddOnFactory)
    recovery_site = factory.SubFactory(
        SiteFactory, subscription=factory.SelfAttribute("..subscription"),
        cloud=factory.SelfAttribute("..addon.recovery_cloud"), recovery=True, ready=True)
    state = ProtectionState.PROTECTED


class ProtectedVmFactory(DjangoModelFactory):
    """A running VM of the protected subscription and its replica, never synced unless
    ``last_sync_at`` says when."""

    class Meta:
        model = ProtectedVm

    protection = factory.SubFactory(ProtectionFactory)
    vm = factory.SubFactory(VirtualMachineFactory, state=VmState.RUNNING,
                            subscription=factory.SelfAttribute("..protection.subscription"),
                            fabric_id=factory.Sequence(lambda n: f"fab-vm-{n}"))
    state = "protected"
    primary_fabric_id = factory.LazyAttribute(lambda row: row.vm.fabric_id)
    recovery_fabric_id = factory.LazyAttribute(lambda row: f"rep-{row.primary_fabric_id}")
    last_sync_at = None


class DrReportFactory(DjangoModelFactory):
    """A report of a drill or failover. ``started_at`` is the time the row was saved
    (``auto_now_add``), so a report that started in the past is saved at that time."""

    class Meta:
        model = DrReport

    protection = factory.SubFactory(ProtectionFactory)
    kind = DrillKind.TEST

    @classmethod
    def _create(cls, model_class, *args, started_at=None, **fields):
        if started_at is None:
            return super()._create(model_class, *args, **fields)
        with time_machine.travel(started_at, tick=False):
            return super()._create(model_class, *args, **fields)
