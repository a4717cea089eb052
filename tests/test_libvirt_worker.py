"""The VM runbooks end to end on a libvirt stamp: a real Celery worker drives libvirt's
test driver (a ``test:///<file>.xml`` host) through the libvirt driver, the tenant works
through the API.

A ``test:///`` host lives inside the process that opened it: here, the worker's. So the
test sees the host through what the worker recorded (the jobs' logs, the fabric ids that
derive from the steps' keys), never by opening it itself (that would be a fresh host).
"""

import os

import pytest

from conftest import unique
from provisioning.models import Job, VirtualMachine
from tests.test_runbooks_integration import commission_job, subscribe, wait_job

if os.environ.get("BUFFET_REQUIRE_LIBVIRT") != "1":
    pytest.importorskip("libvirt", reason="libvirt-python is not installed")

from fabric.drivers.libvirt_xml import derived_id  # noqa: E402

pytestmark = pytest.mark.worker

NODE = """<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>16</active><nodes>1</nodes>
    <sockets>1</sockets><cores>8</cores><threads>2</threads></cpu>
  <memory>33554432</memory>
  <pool type='dir'><name>default</name><capacity unit='GiB'>100</capacity>
    <allocation unit='GiB'>0</allocation><target><path>/var/lib/libvirt/images</path></target>
  </pool>
</node>
"""


@pytest.fixture
def kvm_world(staff, signup, workers, settings, tmp_path):
    """A libvirt stamp, its cloud, template and plan, a worker on its queue, and a tenant
    with a commissioned subscription."""
    settings.BUFFET_JOB_LEASE_SECONDS = 3
    node = tmp_path / "node.xml"
    node.write_text(NODE)

    def post(path, body):
        response = staff.post(f"/api/v1/admin/{path}/", body, format="json")
        assert response.status_code == 201, (path, response.content)
        return response.json()

    stamp = post("stamps", {"name": unique("kvm-"), "region": "west", "driver": "libvirt",
                            "endpoint": f"test://{node}"})
    cloud = post("clouds", {"name": unique("kvm-cloud-"), "stamp": stamp["id"],
                            "capacity": {"vcpus": 16, "memory_mb": 32768, "storage_gb": 100,
                                         "vms": 20},
                            "default_network_cidr": "10.1.0.0/24"})
    template = post("templates", {"name": "debian-12", "os": "Debian 12", "cloud": cloud["id"],
                                  "image": "debian-12", "min_memory_mb": 512,
                                  "min_disk_gb": 10})
    plan = post("plans", {"name": unique("KVM "), "state": "public", "cloud": cloud["id"],
                          "templates": [template["id"]],
                          "quotas": {"vcpus": 8, "memory_mb": 16384, "storage_gb": 200,
                                     "vms": 4, "networks": 3, "snapshots": 4}})
    worker = workers([f"stamp.{stamp['name']}"])
    owner = signup()
    subscription = subscribe(owner, plan)
    commission = wait_job(owner, commission_job(owner, subscription["id"])["id"],
                          worker=worker)
    assert commission["state"] == "succeeded", commission["error"]
    return {"stamp": stamp, "template": template, "worker": worker, "owner": owner,
            "subscription": subscription, "commission": commission}


def settled(owner, response, worker) -> dict:
    assert response.status_code == 202, response.content
    job = wait_job(owner, response.json()["job"], worker=worker)
    assert job["state"] == "succeeded", job["error"]
    return job


def test_the_commission_makes_container_and_network_and_skips_the_edge(kvm_world):
    steps = {s["name"]: s for s in kvm_world["commission"]["steps"]}
    assert [name for name, s in steps.items() if s["state"] == "succeeded"] == [
        "Create tenant container", "Create default routed network"]
    for name in ("Reserve external address", "Create gateway", "Allow outbound traffic",
                 "Source NAT to the external address"):
        assert steps[name]["state"] == "skipped"
        assert "has no" in steps[name]["log"]
    network = kvm_world["owner"].get(
        "/api/v1/networks/", {"subscription": kvm_world["subscription"]["id"]}).json()
    [default] = network["results"]
    assert (default["state"], default["cidr"], default["gateway_address"]) == (
        "ready", "10.1.0.0/24", "10.1.0.1")


def test_the_vm_runbooks_on_a_libvirt_stamp(kvm_world):
    w = kvm_world
    owner, sid, worker = w["owner"], w["subscription"]["id"], w["worker"]
    # create
    response = owner.post("/api/v1/vms/", {
        "subscription": sid, "name": "web-1", "template": w["template"]["id"], "vcpus": 2,
        "memory_mb": 1024, "disk_gb": 20}, format="json")
    created = settled(owner, response, worker)
    vm = response.json()
    url = f"/api/v1/vms/{vm['id']}/"
    assert owner.get(url).json()["state"] == "running"
    # the domain is the libvirt driver's: its UUID derives from the step's key
    job = Job.objects.get(pk=created["id"])
    fabric_id = VirtualMachine.objects.get(pk=vm["id"]).fabric_id
    assert fabric_id == derived_id("vm", f"{job.pk}:{job.run}:1")
    assert f"VM {fabric_id} on {vm['ip_address']}, running" in created["steps"][0]["log"]
    # stop, start, restart
    settled(owner, owner.post(f"{url}stop/"), worker)
    assert owner.get(url).json()["state"] == "stopped"
    settled(owner, owner.post(f"{url}start/"), worker)
    assert owner.get(url).json()["state"] == "running"
    settled(owner, owner.post(f"{url}restart/"), worker)
    assert owner.get(url).json()["state"] == "running"
    # resize a running VM: stopped, resized, started again
    resized = settled(owner, owner.post(f"{url}resize/", {"vcpus": 4, "memory_mb": 2048},
                                        format="json"), worker)
    assert "now 4 vCPUs, 2048 MB" in resized["steps"][1]["log"]
    assert (owner.get(url).json()["vcpus"], owner.get(url).json()["state"]) == (4, "running")
    # snapshot, restore (the VM runs again after it), delete
    response = owner.post(f"{url}snapshots/", {"name": "before"}, format="json")
    snapshot_job = settled(owner, response, worker)
    snapshot = response.json()
    assert f"checkpoint {Job.objects.get(pk=snapshot_job['id']).pk}:" in (
        snapshot_job["steps"][0]["log"])  # the snapshot is named after its key
    settled(owner, owner.post(f"{url}snapshots/{snapshot['id']}/restore/"), worker)
    assert owner.get(url).json()["state"] == "running"
    snapshots = owner.get(f"{url}snapshots/").json()["results"]
    assert [(s["name"], s["state"]) for s in snapshots] == [("before", "ready")]
    settled(owner, owner.delete(url), worker)
    assert owner.get(url).status_code == 404
    used = {k: v["used"] for k, v in owner.get(f"/api/v1/subscriptions/{sid}/quota/").json()
            .items()}
    assert used == {"vcpus": 0, "memory_mb": 0, "storage_gb": 0, "vms": 0, "networks": 0,
                    "snapshots": 0}


def test_a_libvirt_stamp_registered_while_the_worker_runs_is_served(staff, signup, workers,
                                                                    settings):
    # given the worker `buffet run` starts for libvirt stamps (one process, threads),
    # running before the stamp exists
    from portal.cli import LIBVIRT_IDLE_QUEUE

    settings.BUFFET_JOB_LEASE_SECONDS = 3
    worker = workers([LIBVIRT_IDLE_QUEUE], concurrency=2,
                     args=("--pool", "threads", "--stamp-drivers", "libvirt"),
                     BUFFET_STAMP_QUEUES_INTERVAL="0.5")

    def post(path, body):
        response = staff.post(f"/api/v1/admin/{path}/", body, format="json")
        assert response.status_code == 201, (path, response.content)
        return response.json()

    # when the provider registers a libvirt stamp on libvirt's shared test host
    stamp = post("stamps", {"name": unique("kvm-"), "region": "west", "driver": "libvirt",
                            "endpoint": "test:///default"})
    check = staff.post(f"/api/v1/admin/stamps/{stamp['id']}/check/").json()
    assert check["health"] == "healthy", check["health_detail"]
    assert check["capacity"]["capacity"]["vcpus"] > 0
    cloud = post("clouds", {"name": unique("kvm-cloud-"), "stamp": stamp["id"],
                            "capacity": {"vcpus": 16, "memory_mb": 16384, "storage_gb": 100,
                                         "vms": 10},
                            "default_network_cidr": "10.9.0.0/24"})
    template = post("templates", {"name": "debian-12", "os": "Debian 12", "cloud": cloud["id"],
                                  "image": "debian-12", "min_memory_mb": 512,
                                  "min_disk_gb": 1})
    plan = post("plans", {"name": unique("KVM "), "state": "public", "cloud": cloud["id"],
                          "templates": [template["id"]],
                          "quotas": {"vcpus": 4, "memory_mb": 8192, "storage_gb": 50,
                                     "vms": 2, "networks": 1, "snapshots": 2}})
    # then a tenant's subscription and VM are served by that worker
    owner = signup()
    subscription = subscribe(owner, plan)
    commission = wait_job(owner, commission_job(owner, subscription["id"])["id"],
                          worker=worker)
    assert commission["state"] == "succeeded", commission["error"]
    response = owner.post("/api/v1/vms/", {
        "subscription": subscription["id"], "name": "app", "template": template["id"],
        "vcpus": 1, "memory_mb": 1024, "disk_gb": 5}, format="json")
    settled(owner, response, worker)
    url = f"/api/v1/vms/{response.json()['id']}/"
    for action, state in (("stop", "stopped"), ("start", "running")):
        settled(owner, owner.post(f"{url}{action}/"), worker)
        assert owner.get(url).json()["state"] == state
    settled(owner, owner.post(f"{url}snapshots/", {"name": "s1"}, format="json"), worker)
    settled(owner, owner.delete(url), worker)
    assert owner.get(url).status_code == 404
