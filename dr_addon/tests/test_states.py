"""A DR protection and each VM's replica are state machines: named transitions with
explicit sources, a state only they change, a CHECK constraint on the column, and the
services' preconditions in front of them."""

import re

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django_fsm import TransitionNotAllowed

from base.errors import Conflict
from conftest import unique
from dr_addon import services
from dr_addon.models import (
    ActiveSite,
    ProtectedVm,
    ProtectedVmState,
    Protection,
    ProtectionState,
)
from dr_addon.runbooks import FAILOVER
from fabric.models import Cloud, Stamp
from plans.models import AddOn, AddOnKind, SubscriptionAddOn
from provisioning import lifecycle
from provisioning.models import Job, JobState, Site, SiteRole, SiteState
from provisioning.tests.conftest import make_subscription, make_vm

STATE_MACHINES = [Protection, ProtectedVm]


@pytest.fixture
def protected(db):
    """A subscription protected by a DR add-on: its recovery site is ready and one VM
    replicates."""
    subscription = make_subscription()
    stamp = Stamp.objects.create(name=unique("recovery-"), region="r", driver="memory",
                                 endpoint=f"mem://{unique('recovery')}")
    cloud = Cloud.objects.create(name=unique("recovery-"), stamp=stamp, vcpus=64,
                                 memory_mb=65536, storage_gb=1000, vms=50)
    addon = AddOn.objects.create(name=unique("DR "), kind=AddOnKind.DR, recovery_cloud=cloud)
    subscription.plan.addons.add(addon)
    SubscriptionAddOn.objects.create(subscription=subscription, addon=addon)
    site = Site.objects.create(subscription=subscription, cloud=cloud, role=SiteRole.RECOVERY,
                               is_active=False, state=SiteState.READY)
    protection = Protection.objects.create(subscription=subscription, addon=addon,
                                           recovery_site=site, state=ProtectionState.PROTECTED)
    vm = make_vm(subscription, fabric_id="p-1")
    ProtectedVm.objects.create(protection=protection, vm=vm, state=ProtectedVmState.PROTECTED,
                               primary_fabric_id="p-1", recovery_fabric_id="r-1")
    return protection


@pytest.mark.parametrize("model", STATE_MACHINES, ids=lambda m: m.__name__)
def test_every_transition_names_its_sources(model):
    transitions = list(model._meta.get_field("state").get_all_transitions(model))
    assert transitions
    assert all(t.source not in ("*", "+") for t in transitions)


@pytest.mark.parametrize("model", STATE_MACHINES, ids=lambda m: m.__name__)
def test_assigning_the_state_directly_is_refused(protected, model):
    row = protected if model is Protection else protected.vms.get()
    with pytest.raises(AttributeError, match="Direct state modification is not allowed"):
        row.state = "protected"


@pytest.mark.parametrize("model", STATE_MACHINES, ids=lambda m: m.__name__)
def test_the_database_refuses_a_state_that_is_not_one(protected, model):
    row = protected if model is Protection else protected.vms.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.filter(pk=row.pk).update(state="bogus")


@pytest.mark.parametrize(("model", "name", "message"), [
    (Protection, "protection_state_valid", "Not a state of a DR protection."),
    (ProtectedVm, "protected_vm_state_valid", "Not a state of a VM's replica."),
], ids=["Protection", "ProtectedVm"])
def test_the_check_constraint_is_named_and_says_why(db, model, name, message):
    constraint = {c.name: c for c in model._meta.constraints}[name]
    with pytest.raises(ValidationError, match=re.escape(message)):
        constraint.validate(model, model(state="bogus"))


@pytest.mark.parametrize(("state", "transition"), [
    (ProtectionState.PROTECTED, Protection.mark_failed_over),
    (ProtectionState.FAILED_OVER, Protection.start_failover),
    (ProtectionState.PROTECTING, Protection.start_failback),
    (ProtectionState.FAILING_OVER, Protection.start_unprotecting),
], ids=["failed-over-without-failing-over", "fail-over-twice", "fail-back-unprotected",
        "unprotect-mid-failover"])
def test_an_illegal_protection_transition_is_refused(protected, state, transition):
    # given a protection in a state the transition does not start from
    Protection.objects.filter(pk=protected.pk).update(state=state)
    protection = Protection.objects.get(pk=protected.pk)
    # when the transition is called, then it is refused
    with pytest.raises(TransitionNotAllowed):
        transition(protection)
    assert protection.state == state


def test_a_replica_that_did_not_fail_over_cannot_be_protected_again(protected):
    replica = protected.vms.get()
    with pytest.raises(TransitionNotAllowed):
        replica.protect_again()
    replica.fail_over()
    replica.protect_again()
    assert replica.state == ProtectedVmState.PROTECTED


def test_a_failover_moves_the_protection_through_failing_over_to_failed_over(protected):
    subscription = protected.subscription
    # when the tenant's provider fails the subscription over
    job = services.failover(subscription, mode="planned", acting_user=None)
    # then the protection is failing over while the job runs
    protection = Protection.objects.get(pk=protected.pk)
    assert protection.state == ProtectionState.FAILING_OVER
    assert job.state == JobState.QUEUED and job.runbook == "dr.failover"
    # and failed over when the job ends
    with transaction.atomic():
        FAILOVER.on_success(job)
    protection.refresh_from_db()
    assert protection.state == ProtectionState.FAILED_OVER


def test_dr_cannot_be_removed_while_a_failover_is_under_way(protected):
    # given a failover that has not switched sites yet
    Protection.objects.filter(pk=protected.pk).update(state=ProtectionState.FAILING_OVER,
                                                      active_site=ActiveSite.PRIMARY)
    # when the tenant detaches the DR add-on, then it is refused and nothing changes
    with pytest.raises(Conflict, match="DR is failing over"):
        lifecycle.detach_addon(protected.subscription, addon_id=protected.addon_id,
                               acting_user=None)
    assert Protection.objects.get(pk=protected.pk).state == ProtectionState.FAILING_OVER
    assert SubscriptionAddOn.objects.filter(subscription=protected.subscription).exists()


def test_removing_dr_starts_deleting_the_recovery_site(protected):
    # when the tenant detaches the DR add-on of a protected subscription
    lifecycle.detach_addon(protected.subscription, addon_id=protected.addon_id,
                           acting_user=None)
    # then the protection is being removed, with its recovery site, by a job
    protection = Protection.objects.select_related("recovery_site").get(pk=protected.pk)
    assert protection.state == ProtectionState.UNPROTECTING
    assert protection.recovery_site.state == SiteState.DELETING
    assert Job.objects.filter(runbook="dr.unprotect", resource_id=str(protected.pk),
                              state=JobState.QUEUED).exists()
