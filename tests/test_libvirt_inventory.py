"""Reconciliation and metering read a libvirt stamp's own inventory: the portal's sites
and VMs against the host's domains and networks (libvirt's test driver, in process)."""

import os
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db.models import Sum

from billing import metering
from billing.models import MissingState, MissingUsage, UsageRecord
from fabric.models import Stamp
from provisioning import engine
from provisioning.models import Job
from provisioning.reconcile import drift
from tests.test_libvirt_worker import NODE

if os.environ.get("BUFFET_REQUIRE_LIBVIRT") != "1":
    pytest.importorskip("libvirt", reason="libvirt-python is not installed")

from fabric.drivers import libvirt as libvirt_driver  # noqa: E402

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def kvm(staff, signup, tmp_path):
    """A libvirt stamp with a tenant's commissioned subscription and a running VM, each
    job run here as a worker would (the test host lives in this process)."""
    node = tmp_path / "node.xml"
    node.write_text(NODE)
    endpoint = f"test://{node}"

    def post(client, path, body):
        response = client.post(path, body, format="json")
        assert response.status_code in (201, 202), (path, response.content)
        return response.json()

    def run(job_id):
        engine.run(job_id)
        job = Job.objects.get(pk=job_id)
        assert job.state == "succeeded", job.error

    stamp = post(staff, "/api/v1/admin/stamps/", {
        "name": "kvm-local", "region": "west", "driver": "libvirt", "endpoint": endpoint})
    cloud = post(staff, "/api/v1/admin/clouds/", {
        "name": "kvm-cloud", "stamp": stamp["id"], "default_network_cidr": "10.1.0.0/24",
        "capacity": {"vcpus": 16, "memory_mb": 32768, "storage_gb": 100, "vms": 10}})
    template = post(staff, "/api/v1/admin/templates/", {
        "name": "debian-12", "os": "Debian 12", "cloud": cloud["id"], "image": "debian-12"})
    plan = post(staff, "/api/v1/admin/plans/", {
        "name": "KVM", "state": "public", "cloud": cloud["id"], "templates": [template["id"]],
        "quotas": {"vcpus": 8, "memory_mb": 16384, "storage_gb": 200, "vms": 4,
                   "networks": 2, "snapshots": 2}})
    owner = signup()
    subscription = post(owner, "/api/v1/subscriptions/", {"plan": plan["id"], "name": "p"})
    run(Job.objects.get(subscription_id=subscription["id"]).pk)
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        vm = post(owner, "/api/v1/vms/", {
            "subscription": subscription["id"], "name": "web", "template": template["id"],
            "vcpus": 2, "memory_mb": 2048, "disk_gb": 20})
        run(vm["job"])
    yield {"stamp": Stamp.objects.get(pk=stamp["id"]), "endpoint": endpoint, "run": run,
           "subscription": subscription}
    libvirt_driver.forget(endpoint)


def test_a_commissioned_libvirt_stamp_has_no_drift(kvm):
    assert drift(kvm["stamp"]) == []


def test_what_the_host_holds_unknown_to_the_portal_is_an_orphan(kvm):
    # given a container made on the host behind the portal's back
    from fabric.services import driver_for

    foreign = driver_for(kvm["stamp"]).create_container(key="by-hand", name="someone")
    # then reconciliation names it
    assert [str(d) for d in drift(kvm["stamp"])] == [
        f"orphan container {foreign.id}: on kvm-local, unknown to the portal"]


def test_metering_counts_the_hosts_vms_and_marks_an_outage_it_cannot_rebuild(kvm):
    stamp = kvm["stamp"]
    # when metering runs at 10:01 and 10:02
    for minute in (1, 2):
        with time_machine.travel(T0 + minute * MINUTE + timedelta(seconds=5), tick=False):
            metering.collect(stamp)
    # then each minute counts the VM's 2 vCPUs and 2 GiB from the host's inventory
    assert UsageRecord.objects.filter(meter="vcpus").aggregate(s=Sum("quantity"))["s"] == 4
    assert UsageRecord.objects.filter(meter="memory_mb").aggregate(
        s=Sum("quantity"))["s"] == 2 * 2048
    # and minutes it missed are not invented: libvirt keeps no usage history
    with time_machine.travel(T0 + 6 * MINUTE + timedelta(seconds=5), tick=False):
        report = metering.collect(stamp)
    assert report.unrecoverable == 3
    lost = MissingUsage.objects.get(stamp=stamp, state=MissingState.UNRECOVERABLE)
    assert (lost.start, lost.end) == (T0 + 2 * MINUTE, T0 + 5 * MINUTE)
    assert "libvirt keeps none" in lost.detail


def test_a_decommission_leaves_nothing_on_the_host(kvm, staff):
    from fabric.services import driver_for

    response = staff.delete(f"/api/v1/admin/subscriptions/{kvm['subscription']['id']}/")
    assert response.status_code == 202, response.content
    kvm["run"](response.json()["job"])
    inventory = driver_for(kvm["stamp"]).inventory()
    assert (inventory.containers, inventory.networks, inventory.vms) == ((), (), ())
    assert drift(kvm["stamp"]) == []
