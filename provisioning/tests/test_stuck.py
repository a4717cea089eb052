"""The stuck sweeper: a resource left in a transitional state past its deadline, with no
job acting on it, is marked failed, logged and audited; anything else is left alone."""

from datetime import UTC, datetime, timedelta

import pytest

from base.events import Event
from base.models import AuditEvent
from provisioning.models import (
    JobState,
    NetworkState,
    SiteState,
    SnapshotState,
    VmState,
)
from provisioning.stuck import reset_stuck_resources
from provisioning.tests.conftest import job_on, make_network, make_snapshot, make_vm

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = START + timedelta(hours=2)  # past the default deadline of an hour


@pytest.fixture(autouse=True)
def _deadline(settings):
    settings.BUFFET_STUCK_RESOURCE_SECONDS = 3600


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(START, tick=False)
    return time_machine


def test_a_vm_stuck_starting_past_the_deadline_with_no_job_becomes_failed(
        subscription, clock, caplog):
    # given a VM that has been starting since nine, and no job acting on it any more
    vm = make_vm(subscription, state=VmState.STARTING)
    job_on(vm, runbook="vm.start", state=JobState.FAILED)
    # when the sweeper runs two hours later
    clock.move_to(LATER, tick=False)
    reset = reset_stuck_resources()
    # then the VM is failed, and the log and the audit trail say why
    vm.refresh_from_db()
    assert vm.state == VmState.FAILED
    assert reset == [f"provisioning.virtualmachine {vm.pk}"]
    assert "was starting since 2026-03-02T09:00:00+00:00 with no job acting on it" in caplog.text
    audit = AuditEvent.objects.get(event=Event.VM_STUCK, object_id=str(vm.pk))
    assert audit.tenant_id == subscription.tenant_id
    assert audit.detail == {"was": "starting", "since": "2026-03-02T09:00:00+00:00"}


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.RUNNING, JobState.COMPENSATING])
def test_a_vm_with_a_live_job_is_left_alone(subscription, clock, state):
    # given a VM starting since nine whose start job is still live
    vm = make_vm(subscription, state=VmState.STARTING)
    job_on(vm, runbook="vm.start", state=state)
    # when the sweeper runs two hours later, then the VM is left to its job
    clock.move_to(LATER, tick=False)
    assert reset_stuck_resources() == []
    vm.refresh_from_db()
    assert vm.state == VmState.STARTING


def test_a_vm_inside_the_deadline_is_left_alone(subscription, clock):
    # given a VM that has been starting for half an hour, with no job
    vm = make_vm(subscription, state=VmState.STARTING)
    # when the sweeper runs, then it is not stuck yet
    clock.move_to(START + timedelta(minutes=30), tick=False)
    assert reset_stuck_resources() == []
    vm.refresh_from_db()
    assert vm.state == VmState.STARTING
    # and a shorter deadline, given by the caller, does make it stuck
    assert reset_stuck_resources(older_than=timedelta(minutes=10)) == [
        f"provisioning.virtualmachine {vm.pk}"]


def test_a_settled_vm_is_never_stuck(subscription, clock):
    vm = make_vm(subscription, state=VmState.RUNNING)
    clock.move_to(LATER, tick=False)
    assert reset_stuck_resources() == []
    vm.refresh_from_db()
    assert vm.state == VmState.RUNNING


def test_a_restore_job_on_a_checkpoint_keeps_its_vm(subscription, clock):
    # given a VM restoring a checkpoint: the job's resource is the checkpoint
    vm = make_vm(subscription, state=VmState.RESTORING)
    checkpoint = make_snapshot(vm, state=SnapshotState.RESTORING)
    job_on(checkpoint, runbook="snapshot.restore", subscription=subscription)
    # when the sweeper runs past the deadline, then neither is touched
    clock.move_to(LATER, tick=False)
    assert reset_stuck_resources() == []


def test_a_job_on_the_whole_subscription_keeps_its_resources(subscription, clock):
    # given VMs stopping for a suspension: its job is on the subscription, not on a VM
    vm = make_vm(subscription, state=VmState.STOPPING)
    job_on(None, runbook="subscription.suspend", subscription=subscription)
    # when the sweeper runs past the deadline, then the VMs are left to that job
    clock.move_to(LATER, tick=False)
    assert reset_stuck_resources() == []
    vm.refresh_from_db()
    assert vm.state == VmState.STOPPING


def test_a_job_on_another_resource_does_not_keep_a_stuck_one(subscription, clock):
    stuck = make_vm(subscription, state=VmState.STOPPING)
    job_on(make_vm(subscription, state=VmState.STARTING), runbook="vm.start")
    clock.move_to(LATER, tick=False)
    assert reset_stuck_resources() == [f"provisioning.virtualmachine {stuck.pk}"]


def test_networks_checkpoints_and_sites_stuck_with_no_job_become_failed(subscription, clock):
    # given one of each left in a transitional state at nine
    network = make_network(subscription, name="n", state=NetworkState.DELETING)
    checkpoint = make_snapshot(make_vm(subscription), state=SnapshotState.CREATING)
    site = subscription.sites.get()
    site.start_deleting()
    site.save()
    # when the sweeper runs two hours later
    clock.move_to(LATER, tick=False)
    reset = reset_stuck_resources()
    # then each is failed, with its own audit event
    for row, event in ((network, Event.NETWORK_STUCK), (checkpoint, Event.SNAPSHOT_STUCK),
                       (site, Event.SITE_STUCK)):
        row.refresh_from_db()
        assert row.state == "failed"
        assert f"{row._meta.label_lower} {row.pk}" in reset
        assert AuditEvent.objects.get(event=event, object_id=str(row.pk)).tenant_id == (
            subscription.tenant_id)
    assert site.state == SiteState.FAILED


def test_a_second_run_finds_nothing_more_to_do(subscription, clock):
    make_vm(subscription, state=VmState.RESIZING)
    clock.move_to(LATER, tick=False)
    assert len(reset_stuck_resources()) == 1
    assert reset_stuck_resources() == []
    assert AuditEvent.objects.filter(event=Event.VM_STUCK).count() == 1

