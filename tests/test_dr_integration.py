"""The DR add-on end to end: two stampsim processes, a real worker, the test database."""

import pytest

from conftest import unique
from tests.processes import wait_for
from tests.test_runbooks_integration import commission_job, subscribe, wait_job

pytestmark = pytest.mark.worker


@pytest.fixture
def dr_world(staff, stampsims, workers, signup, settings):
    settings.BUFFET_JOB_LEASE_SECONDS = 3
    post = lambda path, body: staff.post(f"/api/v1/admin/{path}/", body,  # noqa: E731
                                         format="json").json()
    sims = {"primary": stampsims("west"), "recovery": stampsims("north")}
    stamps = {role: post("stamps", {"name": sim.name, "region": role, "driver": "simulated",
                                    "endpoint": sim.url}) for role, sim in sims.items()}
    clouds = {role: post("clouds", {
        "name": unique(f"{role}-"), "stamp": stamps[role]["id"],
        "capacity": {"vcpus": 512, "memory_mb": 1_000_000, "storage_gb": 100_000, "vms": 500},
        "default_network_cidr": "10.5.0.0/24",
        "external_pool_cidr": "192.0.2.0/28" if role == "primary" else "198.51.100.0/28"})
        for role in sims}
    template = post("templates", {"name": "debian", "os": "Debian", "image": "deb",
                                  "cloud": clouds["primary"]["id"]})
    addon = post("addons", {"name": unique("DR "), "kind": "dr", "rpo_seconds": 300,
                            "recovery_cloud": clouds["recovery"]["id"]})
    post("network-mappings", {"addon": addon["id"], "primary_network": "external",
                              "recovery_network": "external"})
    plan = post("plans", {"name": unique("Protected "), "state": "public",
                          "cloud": clouds["primary"]["id"], "templates": [template["id"]],
                          "addons": [addon["id"]],
                          "quotas": {"vcpus": 100, "memory_mb": 100_000, "storage_gb": 10_000,
                                     "vms": 30, "networks": 3, "snapshots": 3}})
    worker = workers([f"stamp.{sims['primary'].name}", f"stamp.{sims['recovery'].name}"])
    owner = signup()
    subscription = subscribe(owner, plan)
    assert wait_job(owner, commission_job(owner, subscription["id"])["id"],
                    worker=worker)["state"] == "succeeded"
    network = owner.get("/api/v1/networks/").json()["results"][0]
    return {"sims": sims, "addon": addon, "plan": plan, "template": template,
            "worker": worker, "owner": owner, "sid": subscription["id"], "network": network,
            "staff": staff}


def create_vms(w, count, prefix="vm"):
    jobs = []
    for i in range(count):
        response = w["owner"].post("/api/v1/vms/", {
            "subscription": w["sid"], "name": f"{prefix}-{i}", "template": w["template"]["id"],
            "vcpus": 1, "memory_mb": 512, "disk_gb": 10, "network": w["network"]["id"]},
            format="json")
        assert response.status_code == 202, response.content
        jobs.append((response.json()["id"], response.json()["job"]))
    for _, job in jobs:
        assert wait_job(w["owner"], job, worker=w["worker"])["state"] == "succeeded"
    return [vm for vm, _ in jobs]


def protect(w):
    response = w["owner"].post(f"/api/v1/subscriptions/{w['sid']}/addons/",
                               {"addon": w["addon"]["id"]}, format="json")
    assert response.status_code == 201, response.content
    # the answer names the protection's job
    job = wait_job(w["owner"], response.json()["job"], worker=w["worker"], timeout=120)
    assert job["runbook"] == "dr.protect"
    assert job["state"] == "succeeded", job["error"]
    return job


def dr(w):
    return w["owner"].get(f"/api/v1/subscriptions/{w['sid']}/dr/").json()


def admin_job(w, response, timeout=90):
    assert response.status_code == 202, response.content
    return wait_job(w["staff"], response.json()["job"], worker=w["worker"], timeout=timeout,
                    path="/api/v1/admin/jobs/")


def fabric_vms(sim):
    return {vm["id"]: vm for vm in sim.request("GET", "/v1/inventory")[1]["vms"]}


def test_a_20_vm_subscription_is_protected_and_a_21st_vm_too(dr_world):
    w = dr_world
    create_vms(w, 20)
    # when the tenant attaches the DR add-on
    protect(w)
    # then every VM replicates to the recovery stamp, networks included
    status = dr(w)
    assert status["state"] == "protected" and status["active_site"] == "primary"
    assert len(status["protected"]) == 20
    assert all(p["state"] == "protected" and p["last_sync_at"] for p in status["protected"])
    recovery = w["sims"]["recovery"].request("GET", "/v1/inventory")[1]
    assert sum(vm["kind"] == "replica" for vm in recovery["vms"]) == 20
    assert [n["cidr"] for n in recovery["networks"]] == ["10.5.0.0/24"]
    # a VM created later is protected by the trigger
    create_vms(w, 1, prefix="late")
    wait_for(lambda: len(dr(w)["protected"]) == 21, timeout=60,
             message="the 21st VM was not protected")


def test_planned_failover_keeps_data_and_identity_then_failback(dr_world):
    w = dr_world
    vm_ids = create_vms(w, 3)
    protect(w)
    primary, recovery = w["sims"]["primary"], w["sims"]["recovery"]
    before = {vm["name"]: vm for vm in fabric_vms(primary).values()}
    # data written in the guests after the last sync
    for vm in before.values():
        primary.request("POST", f"/v1/vms/{vm['id']}/write", {"amount": 5}, key=f"w-{vm['id']}")
    written = {vm["name"]: vm["data_version"] for vm in fabric_vms(primary).values()}
    # when the provider fails over, planned
    job = admin_job(w, w["staff"].post(f"/api/v1/admin/subscriptions/{w['sid']}/dr/failover/",
                                       {"mode": "planned"}, format="json"))
    assert job["state"] == "succeeded", job["error"]
    # then the same VMs (same UUIDs) run on the recovery stamp with every byte
    status = dr(w)
    assert status["state"] == "failed_over" and status["active_site"] == "recovery"
    on_recovery = {vm["name"]: vm for vm in fabric_vms(recovery).values()}
    for name, version in written.items():
        assert on_recovery[name]["power_state"] == "running"
        assert on_recovery[name]["data_version"] == version
    assert all(vm["power_state"] == "stopped" for vm in fabric_vms(primary).values())
    report = status["reports"][0]
    assert report["kind"] == "planned" and report["data_loss_seconds"] == 0
    for vm_id in vm_ids:
        assert w["owner"].get(f"/api/v1/vms/{vm_id}/").json()["state"] == "running"
    # and a VM action goes to the recovery stamp
    stop = w["owner"].post(f"/api/v1/vms/{vm_ids[0]}/stop/")
    assert wait_job(w["owner"], stop.json()["job"], worker=w["worker"])["state"] == "succeeded"
    name = w["owner"].get(f"/api/v1/vms/{vm_ids[0]}/").json()["name"]
    assert {vm["name"]: vm for vm in fabric_vms(recovery).values()}[name]["power_state"] == \
        "stopped"
    w["owner"].post(f"/api/v1/vms/{vm_ids[0]}/start/")
    wait_for(lambda: w["owner"].get(f"/api/v1/vms/{vm_ids[0]}/").json()["state"] == "running",
             timeout=30, message="VM did not start again")
    # when it fails back
    job = admin_job(w, w["staff"].post(f"/api/v1/admin/subscriptions/{w['sid']}/dr/failback/"))
    assert job["state"] == "succeeded", job["error"]
    status = dr(w)
    assert status["state"] == "protected" and status["active_site"] == "primary"
    home = {vm["name"]: vm for vm in fabric_vms(primary).values()}
    assert {n: (v["power_state"], v["data_version"]) for n, v in home.items()} == {
        n: ("running", v) for n, v in written.items()}
    assert all(p["state"] == "protected" for p in status["protected"])


def test_unplanned_failover_with_the_primary_stamp_gone(dr_world):
    w = dr_world
    vm_ids = create_vms(w, 2)
    protect(w)
    # when the primary stamp dies
    w["sims"]["primary"].kill()
    job = admin_job(w, w["staff"].post(f"/api/v1/admin/subscriptions/{w['sid']}/dr/failover/",
                                       {"mode": "unplanned"}, format="json"))
    # then the subscription runs from the last sync, and says what may be lost
    assert job["state"] == "succeeded", job["error"]
    status = dr(w)
    assert status["active_site"] == "recovery"
    report = status["reports"][0]
    assert report["kind"] == "unplanned" and report["data_loss_seconds"] is not None
    assert report["data_loss_seconds"] >= 0
    running = [vm for vm in fabric_vms(w["sims"]["recovery"]).values()
               if vm["power_state"] == "running"]
    assert len(running) == 2
    assert {w["owner"].get(f"/api/v1/vms/{v}/").json()["state"] for v in vm_ids} == {"running"}
    # when the primary comes back, failback brings it home
    w["sims"]["primary"].restart()
    job = admin_job(w, w["staff"].post(f"/api/v1/admin/subscriptions/{w['sid']}/dr/failback/"))
    assert job["state"] == "succeeded", job["error"]
    assert dr(w)["active_site"] == "primary"


def test_test_failover_leaves_production_untouched_and_the_recovery_stamp_clean(dr_world):
    w = dr_world
    create_vms(w, 3)
    protect(w)
    primary, recovery = w["sims"]["primary"], w["sims"]["recovery"]
    production = fabric_vms(primary)
    recovery_before = recovery.request("GET", "/v1/inventory")[1]
    # when the tenant runs a drill
    response = w["owner"].post(f"/api/v1/subscriptions/{w['sid']}/dr/test-failover/")
    assert response.status_code == 202
    job = wait_job(w["owner"], response.json()["job"], worker=w["worker"])
    # then it passed, production did not move, and the drill left nothing behind
    assert job["state"] == "succeeded", job["error"]
    report = dr(w)["reports"][0]
    assert report["kind"] == "test_failover" and report["outcome"] == "passed"
    assert report["details"]["vms"] == 3
    assert fabric_vms(primary) == production
    recovery_after = recovery.request("GET", "/v1/inventory")[1]
    for kind in ("containers", "networks", "vms"):
        assert recovery_after[kind] == recovery_before[kind], kind
    assert dr(w)["state"] == "protected"


def test_a_failure_mid_failover_is_reported_and_a_retry_completes_it(dr_world):
    w = dr_world
    create_vms(w, 3)
    protect(w)
    w["sims"]["recovery"].request("POST", "/v1/admin/faults",
                                  {"fail_op_next": {"replication.failover": 1}})
    job = admin_job(w, w["staff"].post(f"/api/v1/admin/subscriptions/{w['sid']}/dr/failover/",
                                       {"mode": "planned"}, format="json"))
    # then the job stopped at the failing step, and the state says so
    assert job["state"] == "failed"
    assert "Fail over the replicas" in job["error"]
    assert [s["state"] for s in job["steps"]][:3] == ["succeeded", "succeeded", "failed"]
    status = dr(w)
    assert status["state"] == "failing_over" and status["active_site"] == "primary"
    # when the provider retries it
    assert w["staff"].post(f"/api/v1/admin/jobs/{job['id']}/retry/").status_code == 202
    job = wait_job(w["staff"], job["id"], worker=w["worker"], path="/api/v1/admin/jobs/")
    assert job["state"] == "succeeded", job["error"]
    assert dr(w)["state"] == "failed_over"
    assert sum(vm["power_state"] == "running"
               for vm in fabric_vms(w["sims"]["recovery"]).values()) == 3


def test_dr_addon_plans_must_map_every_provider_network(staff, catalog):
    addon = catalog["post"]("addons", {"name": unique("Unmapped DR "), "kind": "dr",
                                       "recovery_cloud": catalog["cloud_b"]["id"]})
    response = staff.post("/api/v1/admin/plans/", {
        "name": unique("Bad "), "cloud": catalog["cloud_a"]["id"], "addons": [addon["id"]]},
        format="json")
    assert response.status_code == 400
    assert "does not map: external" in response.json()["errors"]["addons"][0]


def test_another_tenant_cannot_see_or_drill_dr(dr_world, signup):
    w = dr_world
    other = signup()
    assert other.get(f"/api/v1/subscriptions/{w['sid']}/dr/").status_code == 404
    assert other.post(f"/api/v1/subscriptions/{w['sid']}/dr/test-failover/").status_code == 404
