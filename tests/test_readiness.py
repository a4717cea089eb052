"""Subscription readiness and work that waits its turn, black-box against API.md, on a
real worker and stampsim: a subscription is `provisioning` while its commission runs,
networks and VMs asked for meanwhile wait for it, and a failed commission can be retried."""

import pytest

from tests.test_runbooks_integration import wait_job

pytestmark = pytest.mark.worker


@pytest.fixture
def slow_world(fabric, staff):
    """A stamp slow enough (300 ms an operation) that a commission takes seconds, with a
    template in the plan."""
    world = fabric("--latency-ms", "300")
    template = staff.post("/api/v1/admin/templates/", {
        "name": "debian-12", "os": "Debian 12", "cloud": world["cloud"]["id"], "image": "deb",
        "min_vcpus": 1, "min_memory_mb": 512, "min_disk_gb": 10}, format="json").json()
    staff.patch(f"/api/v1/admin/plans/{world['plan']['id']}/",
                {"templates": [template["id"]]}, format="json")
    return {**world, "template": template}


def subscribe(owner, world):
    response = owner.post("/api/v1/subscriptions/", {"plan": world["plan"]["id"],
                                                     "name": "prod"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def ask_for_vm(owner, world, subscription, name="web-1"):
    return owner.post("/api/v1/vms/", {
        "subscription": subscription["id"], "name": name, "template": world["template"]["id"],
        "vcpus": 1, "memory_mb": 512, "disk_gb": 10}, format="json")


def used(owner, subscription) -> dict:
    quota = owner.get(f"/api/v1/subscriptions/{subscription['id']}/quota/").json()
    return {dimension: row["used"] for dimension, row in quota.items()}


def test_a_vm_asked_for_at_once_runs_after_the_commission_on_the_default_network(
        slow_world, signup):
    owner = signup()
    # when a tenant subscribes
    subscription = subscribe(owner, slow_world)
    # then the subscription is provisioning, with the job that commissions it
    assert subscription["state"] == "provisioning" and subscription["job"]
    # when it asks for a VM at once, naming no network
    response = ask_for_vm(owner, slow_world, subscription)
    # then the VM is accepted, its quota held, and its job waits for the commission
    assert response.status_code == 202, response.content
    assert response["Location"] == f"/api/v1/jobs/{response.json()['job']}/"
    vm = response.json()
    assert vm["state"] == "provisioning"
    job = owner.get(f"/api/v1/jobs/{vm['job']}/").json()
    assert (job["state"], job["after"]) == ("queued", subscription["job"])
    assert used(owner, subscription)["vms"] == 1
    # and when the VM's job has ended, the commission had succeeded before it
    assert wait_job(owner, vm["job"], worker=slow_world["worker"])["state"] == "succeeded"
    commission = owner.get(f"/api/v1/jobs/{subscription['job']}/").json()
    assert commission["state"] == "succeeded"
    assert commission["finished_at"] <= owner.get(f"/api/v1/jobs/{vm['job']}/").json()[
        "started_at"]
    # then the subscription is active and the VM runs on its default network
    assert owner.get(f"/api/v1/subscriptions/{subscription['id']}/").json()["state"] == "active"
    networks = owner.get("/api/v1/networks/", {"subscription": subscription["id"]}).json()
    default = networks["results"][0]
    assert (default["name"], default["state"]) == ("default", "ready")
    vm = owner.get(f"/api/v1/vms/{vm['id']}/").json()
    assert (vm["state"], vm["network"]) == ("running", default["id"])


def test_a_failed_commission_fails_the_subscription_and_what_waited_and_a_retry_cures_it(
        slow_world, signup):
    owner = signup()
    # given a stamp whose next gateway fails
    slow_world["sim"].request("POST", "/v1/admin/faults",
                              {"fail_op_next": {"gateway.create": 1}})
    subscription = subscribe(owner, slow_world)
    vm = ask_for_vm(owner, slow_world, subscription).json()
    network = owner.post("/api/v1/networks/", {"subscription": subscription["id"], "name": "app",
                                               "cidr": "10.2.0.0/24"}, format="json")
    assert network.status_code == 202, network.content
    # when the commission has ended
    commission = wait_job(owner, subscription["job"], worker=slow_world["worker"])
    assert commission["state"] == "rolled_back"
    # then the subscription is failed with the job's error
    failed = owner.get(f"/api/v1/subscriptions/{subscription['id']}/").json()
    assert failed["state"] == "failed" and "gateway" in failed["error"].lower()
    # and the work that waited for it was rolled back without running, giving its quota back
    for waiting in (vm["job"], network.json()["job"]):
        job = wait_job(owner, waiting)
        assert job["state"] == "rolled_back" and job["started_at"] is None
        assert job["error"].startswith("Not started: the job it waited for")
    assert owner.get(f"/api/v1/vms/{vm['id']}/").json()["state"] == "failed"
    assert used(owner, subscription) == {"vcpus": 0, "memory_mb": 0, "storage_gb": 0,
                                         "vms": 0, "networks": 0, "snapshots": 0}
    # and nothing new is taken until it is retried
    refused = ask_for_vm(owner, slow_world, subscription, name="web-2")
    assert refused.status_code == 409 and "retry" in refused.json()["detail"]
    # when the tenant retries it
    retried = owner.post(f"/api/v1/subscriptions/{subscription['id']}/retry/")
    # then it is provisioning again, and active when its job has run
    assert retried.status_code == 202, retried.content
    assert retried.json()["state"] == "provisioning"
    assert retried["Location"] == f"/api/v1/jobs/{subscription['job']}/"
    assert wait_job(owner, subscription["job"])["state"] == "succeeded"
    active = owner.get(f"/api/v1/subscriptions/{subscription['id']}/").json()
    assert (active["state"], active["error"]) == ("active", "")
    # and an active subscription has nothing to retry
    again = owner.post(f"/api/v1/subscriptions/{subscription['id']}/retry/")
    assert again.status_code == 409
    assert again.json()["type"].endswith("/subscription-state")
    # and a VM asked for now runs
    response = ask_for_vm(owner, slow_world, subscription, name="web-2")
    assert response.status_code == 202
    assert wait_job(owner, response.json()["job"])["state"] == "succeeded"
