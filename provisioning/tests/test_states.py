"""Every lifecycle is a state machine: named transitions with explicit sources, a state
that only they change, and a CHECK constraint that refuses any other value."""

import re

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django_fsm import ConcurrentTransition, TransitionNotAllowed

from plans.models import Subscription, SubscriptionState
from provisioning.models import (
    Job,
    JobState,
    Network,
    NetworkState,
    Site,
    SiteState,
    Snapshot,
    SnapshotState,
    VirtualMachine,
    VmState,
)
from provisioning.runbooks.subscription import _forget_resources
from provisioning.tests.conftest import job_on, make_network, make_snapshot, make_vm

STATE_MACHINES = [VirtualMachine, Network, Snapshot, Site, Subscription, Job]


def _rows(subscription) -> dict:
    vm = make_vm(subscription)
    return {VirtualMachine: vm, Network: make_network(subscription, name="extra"),
            Snapshot: make_snapshot(vm), Site: subscription.sites.get(),
            Subscription: subscription, Job: job_on(vm, runbook="vm.start")}


@pytest.mark.parametrize("model", STATE_MACHINES, ids=lambda m: m.__name__)
def test_every_transition_names_its_sources(model):
    # given the transitions declared on the model's state field
    transitions = list(model._meta.get_field("state").get_all_transitions(model))
    # then there are some, and none of them starts from any state
    assert transitions
    assert all(t.source not in ("*", "+") for t in transitions), [
        t.name for t in transitions if t.source in ("*", "+")]


@pytest.mark.parametrize("model", STATE_MACHINES, ids=lambda m: m.__name__)
def test_assigning_the_state_directly_is_refused(subscription, model):
    # given a row of the model
    row = _rows(subscription)[model]
    # when its state is assigned instead of moved by a transition, then it is refused
    with pytest.raises(AttributeError, match="Direct state modification is not allowed"):
        row.state = "deleted"


@pytest.mark.parametrize("model", STATE_MACHINES, ids=lambda m: m.__name__)
def test_the_database_refuses_a_state_that_is_not_one(subscription, model):
    # given a row of the model
    row = _rows(subscription)[model]
    # when something bypasses the model and writes a state that is not one, then the CHECK
    # constraint refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.filter(pk=row.pk).update(state="bogus")


@pytest.mark.parametrize(("model", "name", "message"), [
    (VirtualMachine, "vm_state_valid", "Not a state of a VM."),
    (Network, "network_state_valid", "Not a state of a network."),
    (Snapshot, "snapshot_state_valid", "Not a state of a checkpoint."),
    (Site, "site_state_valid", "Not a state of a site."),
    (Subscription, "subscription_state_valid", "Not a state of a subscription."),
    (Job, "job_state_valid", "Not a state of a job."),
], ids=lambda v: getattr(v, "__name__", None))
def test_the_check_constraint_is_named_and_says_why(db, model, name, message):
    # given the model's named constraint on its state column
    constraint = {c.name: c for c in model._meta.constraints}[name]
    # when a row whose state is not one is validated against it, then it says why
    with pytest.raises(ValidationError, match=re.escape(message)):
        constraint.validate(model, model(state="bogus"))


@pytest.mark.parametrize(("make", "transition"), [
    (lambda s: make_vm(s, state=VmState.STOPPED), VirtualMachine.stop),
    (lambda s: make_vm(s, state=VmState.DELETED), VirtualMachine.settle_running),
    (lambda s: make_vm(s, state=VmState.PROVISIONING), VirtualMachine.start_deleting),
    (lambda s: make_network(s, name="n", state=NetworkState.PROVISIONING),
     Network.start_deleting),
    (lambda s: make_network(s, name="n", state=NetworkState.DELETED), Network.mark_ready),
    (lambda s: make_snapshot(make_vm(s), state=SnapshotState.CREATING),
     Snapshot.start_restoring),
    (lambda s: make_snapshot(make_vm(s), state=SnapshotState.DELETED), Snapshot.mark_failed),
    (lambda s: s.sites.get(), Site.mark_ready),
    (lambda s: s.sites.get(), Site.mark_deleted),
], ids=["stop-stopped-vm", "settle-deleted-vm", "delete-provisioning-vm",
        "delete-provisioning-network", "ready-deleted-network", "restore-creating-checkpoint",
        "fail-deleted-checkpoint", "ready-ready-site", "deleted-ready-site"])
def test_an_illegal_transition_is_refused_and_changes_nothing(subscription, make, transition):
    # given a resource in a state the transition does not start from
    row = make(subscription)
    before = row.state
    # when the transition is called, then it is refused and the state stays
    with pytest.raises(TransitionNotAllowed):
        transition(row)
    assert row.state == before
    row.refresh_from_db()
    assert row.state == before


def test_two_writers_of_one_network_cannot_both_win(subscription):
    # given two copies of one ready network, loaded by two requests
    network = make_network(subscription, name="shared")
    first, second = Network.objects.get(pk=network.pk), Network.objects.get(pk=network.pk)
    # when both start deleting it, then the first wins and the second fails instead of
    # overwriting what the first did
    first.start_deleting()
    first.save()
    second.start_deleting()
    with pytest.raises(ConcurrentTransition), transaction.atomic():
        second.save()
    assert Network.objects.get(pk=network.pk).state == NetworkState.DELETING


def test_a_job_that_ends_settles_a_resource_the_sweeper_had_failed(subscription):
    # given a VM and a network the stuck sweeper marked failed
    vm = make_vm(subscription, state=VmState.FAILED)
    network = make_network(subscription, name="n", state=NetworkState.FAILED)
    # when a provider's retry of their jobs ends, then the job's end settles them
    vm.settle_running()
    network.mark_deleted()
    assert (vm.state, network.state) == (VmState.RUNNING, NetworkState.DELETED)


def test_a_decommission_forgets_every_resource_through_its_transition(subscription):
    # given resources in every kind of state, one already deleted
    vm = make_vm(subscription, state=VmState.STARTING)
    failed = make_vm(subscription, state=VmState.FAILED)
    gone = make_vm(subscription, state=VmState.DELETED, quota_held=False)
    checkpoint = make_snapshot(vm, state=SnapshotState.CREATING)
    network = make_network(subscription, name="n", state=NetworkState.PROVISIONING)
    # when the decommission has removed everything from the fabric
    with transaction.atomic():
        _forget_resources(subscription)
    # then every one of them is deleted and holds no quota
    for row in (vm, failed, gone, checkpoint, network):
        row.refresh_from_db()
        assert (row.state, row.quota_held) == ("deleted", False), row
    assert subscription.state == SubscriptionState.ACTIVE  # its own transition is the hook's


def test_a_commission_that_ends_after_a_decommission_began_leaves_the_site_deleting(
        subscription):
    # given a site a decommission moved on while its commission was still running
    from provisioning.runbooks.subscription import _commissioned

    site = Site.objects.get(subscription=subscription)
    Site.objects.filter(pk=site.pk).update(state=SiteState.DELETING)
    subscription.networks.all().delete()  # the hook records the default network
    job = job_on(site, runbook="subscription.commission", state=JobState.SUCCEEDED)
    job.inputs = {"site": str(site.pk)}
    # when the commission's end hook runs
    with transaction.atomic():
        _commissioned(job)
    # then the site stays deleting, for the decommission to finish
    site.refresh_from_db()
    assert site.state == SiteState.DELETING
