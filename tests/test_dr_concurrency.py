"""DR steps call the fabric for many VMs at once, within a bound, each call under its own
key; a failure of some VMs leaves the others done and a reported state that a retry
completes. In process, on the catalog's memory stamps, with the engine run here as a
worker would; the drivers are wrapped to count the calls in flight (never timed)."""

import threading
from collections import defaultdict

import pytest

from dr_addon import runbooks
from dr_addon.models import ProtectedVm, ProtectedVmState, Protection
from fabric.drivers import StampUnreachable, memory
from fabric.services import driver_for
from provisioning import engine
from provisioning.models import Job, JobState, StepState
from provisioning.tests.test_fanout import Gauge

BOUND = 3
VMS = 8
PER_VM = {"enable_replication", "get_vm", "stop_vm", "start_vm", "sync_replication",
          "failover_replication"}


@pytest.fixture(autouse=True)
def _engine(settings):
    settings.BUFFET_JOB_LEASE_SECONDS = 600  # no heartbeat thread writes during a test
    settings.BUFFET_STEP_CONCURRENCY = BOUND
    with engine.use_clock(sleep=lambda seconds: None):  # transient retries cost no time
        yield


class Fabric:
    """The drivers the DR runbooks get, wrapped: a ``Gauge`` per stamp and per-VM call
    (its peak: how many were in flight at once), a count of the calls, and calls made to
    fail before they reach the stamp (``unreachable``: fabric ids, once each)."""

    def __init__(self):
        self.gauges = defaultdict(lambda: Gauge(limit=BOUND))
        self.calls = defaultdict(int)
        self.unreachable: set[str] = set()
        self._lock = threading.Lock()

    def driver_for(self, stamp, **options):
        return _Wrapped(driver_for(stamp, **options), self)

    def peaks(self) -> dict:
        return {key: gauge.peak for key, gauge in self.gauges.items()}


class _Wrapped:
    def __init__(self, driver, fabric: Fabric):
        self._driver, self._fabric = driver, fabric

    def __getattr__(self, name):
        attr = getattr(self._driver, name)
        if name not in PER_VM:
            return attr
        fabric, stamp = self._fabric, self._driver.name

        def call(*args, **kwargs):
            with fabric._lock:
                fabric.calls[(stamp, name)] += 1
                vm_id = kwargs.get("vm_id", args[0] if args else None)
                lost = vm_id in fabric.unreachable
                fabric.unreachable.discard(vm_id)
            with fabric.gauges[(stamp, name)]:
                if lost:
                    raise StampUnreachable(stamp, name, "connection refused")
                return attr(*args, **kwargs)

        return call


@pytest.fixture
def fabric(monkeypatch):
    fabric = Fabric()
    monkeypatch.setattr(runbooks, "driver_for", fabric.driver_for)
    return fabric


def run_job(job_id) -> Job:
    engine.run(job_id)
    return Job.objects.get(pk=job_id)


@pytest.fixture
def world(catalog, signup):
    """A subscription of ``VMS`` running VMs on the primary memory stamp, not protected."""
    plan = catalog["post"]("plans", {
        "name": "Wide", "state": "public", "cloud": catalog["cloud_a"]["id"],
        "templates": [catalog["template"]["id"]], "addons": [catalog["dr"]["id"]],
        "quotas": {"vcpus": VMS, "memory_mb": VMS * 512, "storage_gb": VMS * 10, "vms": VMS,
                   "networks": 1, "snapshots": 0}})
    owner = signup()
    subscription = owner.post("/api/v1/subscriptions/", {"plan": plan["id"], "name": "prod"},
                              format="json").json()
    assert run_job(subscription["job"]).state == JobState.SUCCEEDED
    jobs = [owner.post("/api/v1/vms/", {
        "subscription": subscription["id"], "name": f"vm-{i}",
        "template": catalog["template"]["id"], "vcpus": 1, "memory_mb": 512, "disk_gb": 10},
        format="json").json()["job"] for i in range(VMS)]
    assert {run_job(job).state for job in jobs} == {JobState.SUCCEEDED}
    return {"owner": owner, "sid": subscription["id"], "catalog": catalog}


def protect(w) -> Job:
    link = w["owner"].post(f"/api/v1/subscriptions/{w['sid']}/addons/",
                           {"addon": w["catalog"]["dr"]["id"]}, format="json")
    assert link.status_code == 201, link.content
    job = Job.objects.get(subscription_id=w["sid"], runbook="dr.protect")
    assert link.json()["job"] == str(job.pk)  # the answer names the protection's job
    return run_job(job.pk)


def fail_over(w, staff) -> Job:
    response = staff.post(f"/api/v1/admin/subscriptions/{w['sid']}/dr/failover/",
                          {"mode": "planned"}, format="json")
    assert response.status_code == 202, response.content
    return run_job(response.json()["job"])


def replica_states(w) -> dict:
    counts = defaultdict(int)
    for state in ProtectedVm.objects.filter(
            protection__subscription_id=w["sid"]).values_list("state", flat=True):
        counts[state] += 1
    return dict(counts)


def recovery_operations(w, kind: str) -> list[str]:
    endpoint = w["catalog"]["stamp_b"]["endpoint"]
    return [op["key"] for op in memory.fabric(endpoint).operations() if op["kind"] == kind]


def test_protect_and_failover_call_the_fabric_for_several_vms_at_once_within_the_bound(
        world, fabric, staff):
    w, primary, recovery = world, world["catalog"]["stamp_a"]["name"], \
        world["catalog"]["stamp_b"]["name"]
    # when the tenant protects the subscription and the provider fails it over
    assert protect(w).state == JobState.SUCCEEDED
    job = fail_over(w, staff)
    # then both succeeded
    assert job.state == JobState.SUCCEEDED, job.error
    assert replica_states(w) == {ProtectedVmState.FAILED_OVER: VMS}
    # and each per-VM call of each step had the bound's worth in flight, never more
    assert fabric.peaks() == {(stamp, call): BOUND for stamp, call in [
        (primary, "enable_replication"), (primary, "get_vm"), (primary, "stop_vm"),
        (primary, "sync_replication"), (recovery, "failover_replication"),
        (recovery, "get_vm"), (recovery, "start_vm")]}
    assert fabric.calls[(recovery, "failover_replication")] == VMS


def test_a_failure_of_some_vms_leaves_the_others_failed_over_and_a_retry_completes_it(
        world, fabric, staff):
    w = world
    assert protect(w).state == JobState.SUCCEEDED
    # given a recovery stamp on which the next two replica failovers fail
    memory.admin_request(w["catalog"]["stamp_b"]["endpoint"], "POST", "/v1/admin/faults",
                         {"fail_op_next": {"replication.failover": 2}})
    # when the provider fails over
    job = fail_over(w, staff)
    # then the job stopped failed at that step, and says so
    assert job.state == JobState.FAILED
    assert "Fail over the replicas" in job.error
    steps = list(job.steps.order_by("index"))
    assert [s.state for s in steps][:3] == [StepState.SUCCEEDED] * 2 + [StepState.FAILED]
    assert f"2 of {VMS} calls failed; the others are done" in steps[2].log
    # and the other VMs are recorded failed over; the subscription is still on its primary
    assert replica_states(w) == {ProtectedVmState.FAILED_OVER: VMS - 2,
                                 ProtectedVmState.PROTECTED: 2}
    protection = Protection.objects.get(subscription_id=w["sid"])
    assert (protection.state, protection.active_site) == ("failing_over", "primary")
    # when the provider retries it
    engine.retry(job)
    job = run_job(job.pk)
    # then it completes from there
    assert job.state == JobState.SUCCEEDED, job.error
    assert replica_states(w) == {ProtectedVmState.FAILED_OVER: VMS}
    protection.refresh_from_db()
    assert (protection.state, protection.active_site) == ("failed_over", "recovery")
    running = [vm for vm in memory.fabric(w["catalog"]["stamp_b"]["endpoint"]).state.vms
               .values() if vm["power_state"] == "running"]
    assert len(running) == VMS


def test_a_step_retried_in_place_finds_the_calls_already_made_by_their_keys(
        world, fabric, staff):
    w = world
    assert protect(w).state == JobState.SUCCEEDED
    recovery = w["catalog"]["stamp_b"]["name"]
    # given two replicas whose failover call meets an unreachable stamp once
    rows = list(ProtectedVm.objects.filter(protection__subscription_id=w["sid"])
                .order_by("vm__name"))
    fabric.unreachable = {rows[1].recovery_fabric_id, rows[5].recovery_fabric_id}
    # when the provider fails over
    job = fail_over(w, staff)
    # then the step was retried in place and the job succeeded
    assert job.state == JobState.SUCCEEDED, job.error
    step = job.steps.get(index=3)
    assert "transient error, retrying" in step.log
    # every VM was asked twice, and the stamp ran one operation per VM, under its key
    assert fabric.calls[(recovery, "failover_replication")] == 2 * VMS
    keys = recovery_operations(w, "replication.failover")
    assert sorted(keys) == sorted(f"{job.pk}:1:3:{row.vm_id}" for row in rows)
    assert replica_states(w) == {ProtectedVmState.FAILED_OVER: VMS}
