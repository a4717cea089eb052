"""Runbooks and the stamp's capabilities: an optional step the stamp cannot do is skipped
(and never undone); a runbook that needs what the stamp lacks is refused before a job."""

import pytest

from base.errors import Conflict, ErrorCode
from fabric.drivers import ALL_CAPABILITIES, Capability, capabilities_of
from fabric.models import Stamp
from provisioning import engine
from provisioning.engine import Runbook, Step
from provisioning.models import JobState, StepState
from provisioning.runbooks.subscription import COMMISSION

CALLS: list[str] = []


def _step(name, **options):
    def do(ctx):
        CALLS.append(f"do {name}")
        if name == "boom":
            raise RuntimeError("the step failed")
        return {}

    def undo(ctx):
        CALLS.append(f"undo {name}")

    return Step(name, do, undo, **options)


EDGE = engine.register(Runbook(name="test.edge", steps=(
    _step("container"),
    _step("gateway", needs=frozenset({Capability.GATEWAYS}), optional=True),
    _step("network"),
)))
EDGE_THEN_FAIL = engine.register(Runbook(name="test.edge-then-fail", steps=(
    _step("container"),
    _step("gateway", needs=frozenset({Capability.GATEWAYS}), optional=True),
    _step("boom"),
)))
REPLICATE = engine.register(Runbook(name="test.replicate", steps=(
    _step("enable", needs=frozenset({Capability.REPLICATION})),
)))


@pytest.fixture(autouse=True)
def _clean(settings):
    settings.BUFFET_JOB_LEASE_SECONDS = 600
    CALLS.clear()


@pytest.fixture
def libvirt_stamp(db):
    return Stamp.objects.create(name="kvm", region="r", driver="libvirt",
                                endpoint="test:///default")


@pytest.fixture
def memory_stamp(db):
    return Stamp.objects.create(name="mem", region="r", driver="memory", endpoint="mem://m")


def test_each_driver_kind_declares_what_it_can_do(libvirt_stamp, memory_stamp):
    assert memory_stamp.capabilities == ALL_CAPABILITIES == capabilities_of("simulated")
    assert libvirt_stamp.capabilities == frozenset()
    assert libvirt_stamp.lacks(Capability.REPLICATION, Capability.NAT) == ["nat", "replication"]
    assert memory_stamp.lacks(Capability.REPLICATION) == []


def test_the_libvirt_kind_declares_what_its_driver_does():
    libvirt_driver = pytest.importorskip("fabric.drivers.libvirt")
    assert capabilities_of("libvirt") == libvirt_driver.LibvirtDriver.capabilities


def test_an_optional_step_the_stamp_cannot_do_is_skipped_with_the_reason(libvirt_stamp):
    job = engine.enqueue(EDGE, stamp=libvirt_stamp)
    engine.run(job.pk, worker="w1")
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert CALLS == ["do container", "do network"]
    gateway = job.steps.get(index=2)
    assert gateway.state == StepState.SKIPPED
    assert "skipped: stamp 'kvm' has no gateways" in gateway.log


def test_the_same_step_runs_on_a_stamp_that_can(memory_stamp):
    job = engine.enqueue(EDGE, stamp=memory_stamp)
    engine.run(job.pk, worker="w1")
    assert CALLS == ["do container", "do gateway", "do network"]


def test_a_skipped_step_is_not_undone_when_a_later_one_fails(libvirt_stamp):
    job = engine.enqueue(EDGE_THEN_FAIL, stamp=libvirt_stamp)
    engine.run(job.pk, worker="w1")
    job.refresh_from_db()
    assert job.state == JobState.ROLLED_BACK
    assert CALLS == ["do container", "do boom", "undo container"]
    assert job.steps.get(index=2).state == StepState.SKIPPED


def test_a_runbook_that_needs_what_the_stamp_lacks_is_refused_before_any_job(libvirt_stamp,
                                                                             memory_stamp):
    with pytest.raises(Conflict) as caught:
        engine.enqueue(REPLICATE, stamp=libvirt_stamp)
    assert caught.value.code == ErrorCode.STAMP_INCAPABLE
    assert "Stamp 'kvm' (libvirt) cannot run 'test.replicate': it has no replication" in str(
        caught.value)
    assert not libvirt_stamp.jobs.exists()
    assert engine.enqueue(REPLICATE, stamp=memory_stamp).state == JobState.QUEUED


def test_the_commission_adapts_its_edge_to_the_stamp():
    # it runs on any stamp: only its edge steps depend on what the stamp can do
    assert COMMISSION.needs == frozenset()
    optional = {s.name: s.needs for s in COMMISSION.steps if s.optional}
    assert optional == {
        "Reserve external address": {Capability.GATEWAYS},
        "Create gateway": {Capability.GATEWAYS},
        "Allow outbound traffic": {Capability.FIREWALL},
        "Source NAT to the external address": {Capability.GATEWAYS, Capability.NAT},
    }


def test_a_task_that_needs_guest_files_is_refused_on_a_stamp_without_them(db):
    # given a subscription whose plan's stamp turns into a libvirt one, with the tasks
    from provisioning.models import TaskRun
    from provisioning.tasks_menu import services
    from provisioning.tasks_menu.runbooks import RESTORE_FILE
    from provisioning.tests.conftest import make_snapshot, make_subscription, make_vm
    from tenants.models import Role
    from tenants.tests.factories import MembershipFactory

    subscription = make_subscription()
    services.publish_builtins([subscription.plan])
    vm = make_vm(subscription, name="app-1")
    day = make_snapshot(vm).created_at.date().isoformat()
    owner = MembershipFactory(tenant=subscription.tenant, role=Role.OWNER).user
    Stamp.objects.filter(pk=subscription.plan.cloud.stamp_id).update(
        driver="libvirt", endpoint="test:///default")
    subscription.refresh_from_db()
    assert RESTORE_FILE.needs == {Capability.GUEST_FILES}
    # when a file restore is asked for
    with pytest.raises(Conflict) as caught:
        services.run_task("restore-file", subscription=subscription,
                          inputs={"vm": str(vm.pk), "day": day, "path": "/etc/hosts"},
                          acting_user=owner)
    # then it is refused at once, saying why, and nothing is recorded
    assert caught.value.code == ErrorCode.STAMP_INCAPABLE
    assert "it has no guest-files" in str(caught.value)
    assert not TaskRun.objects.exists()
    # while a task libvirt can do still runs
    run = services.run_task("collect-diagnostics", subscription=subscription,
                            inputs={"vm": str(vm.pk)}, acting_user=owner)
    assert run.job.state == JobState.QUEUED
