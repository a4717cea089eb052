"""The provider's catalog API: staff only, validated, secrets never returned."""

import pytest
from rest_framework.test import APIClient

ADMIN_LISTS = ["stamps", "clouds", "templates", "plans", "addons", "tenants", "subscriptions"]


@pytest.mark.parametrize("resource", ADMIN_LISTS)
def test_admin_endpoints_are_for_staff_only(signup, staff, resource, db):
    tenant_owner = signup()
    assert tenant_owner.get(f"/api/v1/admin/{resource}/").status_code == 403
    assert tenant_owner.post(f"/api/v1/admin/{resource}/", {}, format="json").status_code in {
        403, 405}
    assert APIClient().get(f"/api/v1/admin/{resource}/").status_code == 401
    assert staff.get(f"/api/v1/admin/{resource}/").status_code == 200


def test_stamp_credentials_are_write_only_and_encrypted_at_rest(staff, catalog):
    from django.db import connection

    stamp = catalog["stamp_a"]
    assert "credentials" not in stamp
    assert "credentials" not in staff.get(f"/api/v1/admin/stamps/{stamp['id']}/").json()
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM fabric_stamp WHERE name = %s",
                       [stamp["name"]])
        (raw,) = cursor.fetchone()
    assert raw and '"token"' not in raw and raw != "s"


def test_cloud_reports_capacity_overcommit_and_allocation(catalog):
    cloud = catalog["cloud_a"]
    assert cloud["capacity"] == {"vcpus": 64, "memory_mb": 262144, "storage_gb": 4000,
                                 "vms": 100}
    assert cloud["overcommit"] == {"cpu": "2.00", "memory": "1.00"}
    assert cloud["allocated"]["vcpus"] == {"limit": 128, "used": 0}


def test_stamp_check_records_health(staff, catalog):
    response = staff.post(f"/api/v1/admin/stamps/{catalog['stamp_a']['id']}/check/")
    assert response.status_code == 200
    assert response.json()["health"] == "healthy"
    assert response.json()["last_checked_at"]


def test_stamp_that_does_not_answer_is_unreachable(staff, db):
    stamp = staff.post("/api/v1/admin/stamps/", {
        "name": "dead", "region": "x", "driver": "simulated",
        "endpoint": "http://127.0.0.1:9"}, format="json").json()
    body = staff.post(f"/api/v1/admin/stamps/{stamp['id']}/check/").json()
    assert body["health"] == "unreachable"
    assert "dead" in body["health_detail"]


def test_a_dr_addon_recovering_to_the_plans_own_stamp_is_400(staff, catalog):
    staff_post = catalog["post"]
    same_stamp_cloud = staff_post("clouds", {
        "name": "same-stamp", "stamp": catalog["stamp_a"]["id"],
        "capacity": {"vcpus": 1, "memory_mb": 1, "storage_gb": 1, "vms": 1}})
    bad_dr = staff_post("addons", {"name": "Bad DR", "kind": "dr",
                                   "recovery_cloud": same_stamp_cloud["id"]})
    response = staff.post("/api/v1/admin/plans/", {
        "name": "Broken", "state": "public", "cloud": catalog["cloud_a"]["id"],
        "addons": [bad_dr["id"]]}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "Bad DR" in response.json()["errors"]["addons"][0]
    assert "different stamp" in response.json()["detail"]


@pytest.mark.parametrize("body, field", [
    ({"name": "dr-no-cloud", "kind": "dr"}, "recovery_cloud"),
    ({"name": "q", "kind": "quota", "quotas": {"vcpus": -1}}, "quotas.vcpus"),
    ({"name": "k", "kind": "gold"}, "kind"),
])
def test_addon_validation(staff, db, body, field):
    response = staff.post("/api/v1/admin/addons/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_templates_of_another_cloud_are_refused_in_a_plan(staff, catalog):
    other = catalog["post"]("templates", {"name": "x", "os": "x", "image": "x",
                                          "cloud": catalog["cloud_b"]["id"]})
    response = staff.post("/api/v1/admin/plans/", {
        "name": "Mixed", "cloud": catalog["cloud_a"]["id"], "templates": [other["id"]]},
        format="json")
    assert response.status_code == 400
    assert "templates" in response.json()["errors"]


def test_provider_lists_tenants_and_subscriptions(staff, signup, catalog):
    owner = signup()
    owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"], "name": "prod"},
               format="json")
    tenants = staff.get("/api/v1/admin/tenants/").json()["results"]
    assert owner.tenant["id"] in {t["id"] for t in tenants}
    subs = staff.get("/api/v1/admin/subscriptions/", {"tenant": owner.tenant["id"]}).json()
    assert subs["count"] == 1 and subs["results"][0]["state"] == "provisioning"
    assert subs["results"][0]["job"]


def test_every_check_is_kept_in_the_stamps_health_history(staff, catalog):
    stamp = catalog["stamp_a"]["id"]
    for _ in range(3):
        staff.post(f"/api/v1/admin/stamps/{stamp}/check/")
    history = staff.get(f"/api/v1/admin/stamps/{stamp}/checks/").json()
    assert history["count"] == 3
    assert {c["health"] for c in history["results"]} == {"healthy"}
    assert all(c["latency_ms"] is not None for c in history["results"])


def test_a_plan_says_whether_stopped_vms_are_metered(staff, signup, catalog):
    # given a public plan that meters VMs only while they run
    plan = catalog["post"]("plans", {"name": "Running only", "cloud": catalog["cloud_a"]["id"],
                                     "state": "public", "meter_stopped_vms": False})
    assert plan["meter_stopped_vms"] is False
    # then tenants see it in the offer, and a plan that does not say meters them
    offered = {p["name"]: p for p in signup().get("/api/v1/plans/").json()["results"]}
    assert offered["Running only"]["meter_stopped_vms"] is False
    other = catalog["post"]("plans", {"name": "Default", "cloud": catalog["cloud_a"]["id"]})
    assert other["meter_stopped_vms"] is True
