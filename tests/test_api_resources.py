"""Tenant resources black-box against API.md, on a real worker and stampsim."""

import pytest

from tests.processes import wait_for
from tests.test_runbooks_integration import commission_job, subscribe, wait_job

pytestmark = pytest.mark.worker


@pytest.fixture
def tenant_world(fabric, signup, staff):
    """A tenant with a commissioned subscription on a stampsim stamp."""
    world = fabric()
    template = staff.post("/api/v1/admin/templates/", {
        "name": "debian-12", "os": "Debian 12", "cloud": world["cloud"]["id"], "image": "deb",
        "min_vcpus": 1, "min_memory_mb": 512, "min_disk_gb": 10}, format="json").json()
    staff.patch(f"/api/v1/admin/plans/{world['plan']['id']}/",
                {"templates": [template["id"]]}, format="json")
    owner = signup()
    subscription = subscribe(owner, world["plan"])
    assert wait_job(owner, commission_job(owner, subscription["id"])["id"],
                    worker=world["worker"])["state"] == "succeeded"
    default = owner.get("/api/v1/networks/", {"subscription": subscription["id"]}).json()
    return {**world, "owner": owner, "subscription": subscription, "template": template,
            "default_network": default["results"][0]}


def quota(owner, sid):
    return owner.get(f"/api/v1/subscriptions/{sid}/quota/").json()


def settled(owner, response, worker):
    assert response.status_code == 202, response.content
    job = wait_job(owner, response.json()["job"], worker=worker)
    assert job["state"] == "succeeded", job["error"]
    return job


def test_vm_lifecycle_with_quota_coming_back(tenant_world):
    w = tenant_world
    owner, sid, worker = w["owner"], w["subscription"]["id"], w["worker"]
    # a network of its own
    response = owner.post("/api/v1/networks/", {"subscription": sid, "name": "app",
                                                "cidr": "10.2.0.0/24"}, format="json")
    assert response.json()["state"] == "provisioning"
    settled(owner, response, worker)
    network = owner.get(f"/api/v1/networks/{response.json()['id']}/").json()
    assert network["state"] == "ready" and network["gateway_address"] == "10.2.0.1"
    assert quota(owner, sid)["networks"]["used"] == 1
    # create
    response = owner.post("/api/v1/vms/", {
        "subscription": sid, "name": "web-1", "template": w["template"]["id"], "vcpus": 2,
        "memory_mb": 1024, "disk_gb": 20, "network": network["id"]}, format="json")
    assert response.status_code == 202
    vm = response.json()
    assert vm["state"] == "provisioning" and vm["ip_address"] == "10.2.0.2" and vm["job"]
    assert quota(owner, sid)["vcpus"] == {"limit": 8, "used": 2, "burst": 0}
    settled(owner, response, worker)
    url = f"/api/v1/vms/{vm['id']}/"
    assert owner.get(url).json()["state"] == "running"
    fabric_vm = w["sim"].request("GET", "/v1/vms")[1]
    assert [v["ip_address"] for v in (fabric_vm.get("vms") or fabric_vm)] == ["10.2.0.2"]
    # actions that make no sense are 409
    assert owner.post(f"{url}start/").status_code == 409
    # stop, then restart is refused, start again
    settled(owner, owner.post(f"{url}stop/"), worker)
    assert owner.get(url).json()["state"] == "stopped"
    assert owner.post(f"{url}restart/").status_code == 409
    # checkpoint while stopped, restore, delete
    response = owner.post(f"{url}snapshots/", {"name": "before"}, format="json")
    settled(owner, response, worker)
    snapshot_id = response.json()["id"]
    assert quota(owner, sid)["snapshots"]["used"] == 1
    restore = owner.post(f"{url}snapshots/{snapshot_id}/restore/")
    # the answer is the checkpoint as the restore left it, with its job
    assert (restore.json()["id"], restore.json()["state"]) == (snapshot_id, "restoring")
    assert restore["Location"] == f"/api/v1/jobs/{restore.json()['job']}/"
    settled(owner, restore, worker)
    assert owner.get(url).json()["state"] == "stopped"
    settled(owner, owner.post(f"{url}start/"), worker)
    # a second checkpoint, deleted: the answer is the checkpoint, deleting
    response = owner.post(f"{url}snapshots/", {"name": "spare"}, format="json")
    settled(owner, response, worker)
    delete = owner.delete(f"{url}snapshots/{response.json()['id']}/")
    assert (delete.json()["name"], delete.json()["state"]) == ("spare", "deleting")
    settled(owner, delete, worker)
    assert quota(owner, sid)["snapshots"]["used"] == 1
    # resize checks quota on the difference
    too_big = owner.post(f"{url}resize/", {"vcpus": 9, "memory_mb": 1024}, format="json")
    assert too_big.status_code == 409
    assert too_big.json()["errors"] == {"vcpus": {"requested": 7, "used": 2, "limit": 8}}
    assert owner.get(url).json()["state"] == "running"
    settled(owner, owner.post(f"{url}resize/", {"vcpus": 4, "memory_mb": 2048},
                              format="json"), worker)
    assert owner.get(url).json()["vcpus"] == 4
    assert owner.get(url).json()["state"] == "running"
    assert quota(owner, sid)["vcpus"]["used"] == 4
    # delete gives everything back
    settled(owner, owner.delete(url), worker)
    assert owner.get(url).status_code == 404
    used = {k: v["used"] for k, v in quota(owner, sid).items()}
    assert used == {"vcpus": 0, "memory_mb": 0, "storage_gb": 0, "vms": 0, "networks": 1,
                    "snapshots": 0}


def test_a_create_that_fails_on_the_fabric_returns_its_quota(tenant_world):
    w = tenant_world
    owner, sid = w["owner"], w["subscription"]["id"]
    w["sim"].request("POST", "/v1/admin/faults", {"fail_op_next": {"vm.create": 1}})
    response = owner.post("/api/v1/vms/", {
        "subscription": sid, "name": "doomed", "template": w["template"]["id"], "vcpus": 1,
        "memory_mb": 512, "disk_gb": 10, "network": w["default_network"]["id"]}, format="json")
    assert quota(owner, sid)["vms"]["used"] == 1
    job = wait_job(owner, response.json()["job"], worker=w["worker"])
    assert job["state"] == "rolled_back"
    assert owner.get(f"/api/v1/vms/{response.json()['id']}/").json()["state"] == "failed"
    assert quota(owner, sid)["vms"]["used"] == 0
    # deleting the failed VM does not give it back a second time
    settled(owner, owner.delete(f"/api/v1/vms/{response.json()['id']}/"), w["worker"])
    assert quota(owner, sid)["vms"]["used"] == 0


@pytest.mark.parametrize("body, field", [
    ({"vcpus": 1, "memory_mb": 128, "disk_gb": 10}, "memory_mb"),
    ({"vcpus": 1, "memory_mb": 512, "disk_gb": 5}, "disk_gb"),
    ({"vcpus": 0, "memory_mb": 512, "disk_gb": 10}, "vcpus"),
    ({"vcpus": 1, "memory_mb": 512, "disk_gb": 10, "template": "0" * 8 + "-0000-0000-0000-"
      + "0" * 12}, "template"),
])
def test_vm_requests_that_do_not_fit_are_400_naming_the_field(tenant_world, body, field):
    w = tenant_world
    request = {"subscription": w["subscription"]["id"], "name": "x",
               "template": w["template"]["id"], "network": w["default_network"]["id"], **body}
    response = w["owner"].post("/api/v1/vms/", request, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert quota(w["owner"], w["subscription"]["id"])["vms"]["used"] == 0


def test_quota_exceeded_names_each_dimension(tenant_world):
    w = tenant_world
    response = w["owner"].post("/api/v1/vms/", {
        "subscription": w["subscription"]["id"], "name": "huge",
        "template": w["template"]["id"], "vcpus": 8, "memory_mb": 65536, "disk_gb": 500,
        "network": w["default_network"]["id"]}, format="json")
    # the quota is 8 vCPUs, 16384 MB, 200 GB: memory and storage are over
    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("/quota-exceeded")
    assert problem["errors"] == {
        "memory_mb": {"requested": 65536, "used": 0, "limit": 16384},
        "storage_gb": {"requested": 500, "used": 0, "limit": 200}}
    assert quota(w["owner"], w["subscription"]["id"])["vcpus"]["used"] == 0


def test_overlapping_and_bad_cidrs_are_400(tenant_world):
    w = tenant_world
    owner, sid = w["owner"], w["subscription"]["id"]
    overlap = owner.post("/api/v1/networks/", {"subscription": sid, "name": "clash",
                                               "cidr": "10.1.0.128/25"}, format="json")
    assert overlap.status_code == 400
    assert "Overlaps 'default'" in overlap.json()["errors"]["cidr"][0]
    for cidr in ("10.2.0.1/24", "8.8.8.0/24", "banana", "10.0.0.0/8"):
        response = owner.post("/api/v1/networks/", {"subscription": sid, "name": "n",
                                                    "cidr": cidr}, format="json")
        assert response.status_code == 400 and "cidr" in response.json()["errors"], cidr


def test_suspension_stops_vms_and_refuses_new_work(tenant_world, staff):
    w = tenant_world
    owner, sid = w["owner"], w["subscription"]["id"]
    response = owner.post("/api/v1/vms/", {
        "subscription": sid, "name": "s1", "template": w["template"]["id"], "vcpus": 1,
        "memory_mb": 512, "disk_gb": 10, "network": w["default_network"]["id"]}, format="json")
    settled(owner, response, w["worker"])
    url = f"/api/v1/vms/{response.json()['id']}/"
    # when the provider suspends the subscription
    assert staff.post(f"/api/v1/admin/subscriptions/{sid}/suspend/").status_code == 200
    # then its VMs are stopped by a job
    wait_for(lambda: owner.get(url).json()["state"] == "stopped", timeout=60,
             message="the suspended subscription's VM was not stopped")
    assert owner.post(f"{url}start/").status_code == 409
    created = owner.post("/api/v1/vms/", {
        "subscription": sid, "name": "s2", "template": w["template"]["id"], "vcpus": 1,
        "memory_mb": 512, "disk_gb": 10, "network": w["default_network"]["id"]}, format="json")
    assert created.status_code == 409
    assert created.json()["type"].endswith("/subscription-state")
    # resume lets the tenant start it again
    staff.post(f"/api/v1/admin/subscriptions/{sid}/resume/")
    settled(owner, owner.post(f"{url}start/"), w["worker"])


def test_another_tenant_learns_nothing_of_vms_networks_snapshots_and_jobs(tenant_world,
                                                                         signup):
    w = tenant_world
    owner, sid = w["owner"], w["subscription"]["id"]
    response = owner.post("/api/v1/vms/", {
        "subscription": sid, "name": "mine", "template": w["template"]["id"], "vcpus": 1,
        "memory_mb": 512, "disk_gb": 10, "network": w["default_network"]["id"]}, format="json")
    settled(owner, response, w["worker"])
    vm_id, job_id = response.json()["id"], response.json()["job"]
    snap = owner.post(f"/api/v1/vms/{vm_id}/snapshots/", {"name": "s"}, format="json").json()
    wait_job(owner, snap["job"], worker=w["worker"])
    other = signup()
    net = w["default_network"]["id"]
    for response in (
        other.get(f"/api/v1/vms/{vm_id}/"), other.delete(f"/api/v1/vms/{vm_id}/"),
        other.post(f"/api/v1/vms/{vm_id}/stop/"),
        other.post(f"/api/v1/vms/{vm_id}/resize/", {"vcpus": 2, "memory_mb": 512},
                   format="json"),
        other.get(f"/api/v1/vms/{vm_id}/snapshots/"),
        other.post(f"/api/v1/vms/{vm_id}/snapshots/{snap['id']}/restore/"),
        other.delete(f"/api/v1/vms/{vm_id}/snapshots/{snap['id']}/"),
        other.get(f"/api/v1/networks/{net}/"), other.delete(f"/api/v1/networks/{net}/"),
        other.get(f"/api/v1/jobs/{job_id}/"),
    ):
        assert response.status_code == 404, (response.request, response.content)
    # creating in someone else's subscription names the field, never the owner
    response = other.post("/api/v1/vms/", {
        "subscription": sid, "name": "x", "template": w["template"]["id"], "vcpus": 1,
        "memory_mb": 512, "disk_gb": 10, "network": net}, format="json")
    assert response.status_code == 400 and "subscription" in response.json()["errors"]
    for path in ("/api/v1/vms/", "/api/v1/networks/", "/api/v1/jobs/"):
        assert other.get(path).json()["count"] == 0
    assert owner.get(f"/api/v1/vms/{vm_id}/").json()["state"] == "running"


def test_delete_job_retried_gives_quota_back_once(tenant_world, staff):
    w = tenant_world
    owner, sid = w["owner"], w["subscription"]["id"]
    response = owner.post("/api/v1/vms/", {
        "subscription": sid, "name": "d1", "template": w["template"]["id"], "vcpus": 2,
        "memory_mb": 512, "disk_gb": 10, "network": w["default_network"]["id"]}, format="json")
    settled(owner, response, w["worker"])
    w["sim"].request("POST", "/v1/admin/faults", {"fail_op_next": {"vm.delete": 1}})
    deleting = owner.delete(f"/api/v1/vms/{response.json()['id']}/")
    job = wait_job(owner, deleting.json()["job"], worker=w["worker"])
    assert job["state"] == "failed"
    assert quota(owner, sid)["vcpus"]["used"] == 2
    assert staff.post(f"/api/v1/admin/jobs/{job['id']}/retry/").status_code == 202
    assert wait_job(owner, job["id"], worker=w["worker"])["state"] == "succeeded"
    assert quota(owner, sid)["vcpus"]["used"] == 0
    assert staff.post(f"/api/v1/admin/jobs/{job['id']}/retry/").status_code == 409
    assert quota(owner, sid)["vcpus"]["used"] == 0


def test_a_delete_resumed_after_the_vm_is_gone_from_the_stamp_succeeds(tenant_world):
    # given a VM that is already gone from the stamp, as when a worker deleted it there
    # and died before it could record so
    from provisioning.models import VirtualMachine

    w = tenant_world
    owner, sid = w["owner"], w["subscription"]["id"]
    response = owner.post("/api/v1/vms/", {
        "subscription": sid, "name": "gone", "template": w["template"]["id"], "vcpus": 1,
        "memory_mb": 512, "disk_gb": 10, "network": w["default_network"]["id"]}, format="json")
    settled(owner, response, w["worker"])
    fabric_id = VirtualMachine.objects.get(pk=response.json()["id"]).fabric_id
    status, _ = w["sim"].request("DELETE", f"/v1/vms/{fabric_id}", key="deleted-by-a-lost-worker")
    assert status == 202
    # when its delete job runs (again)
    deleting = owner.delete(f"/api/v1/vms/{response.json()['id']}/")
    # then it ends as a delete does: succeeded, the quota given back
    settled(owner, deleting, w["worker"])
    assert VirtualMachine.objects.get(pk=response.json()["id"]).state == "deleted"
    assert quota(owner, sid)["vms"]["used"] == 0
