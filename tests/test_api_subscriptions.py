"""Plans, subscriptions, quota and add-ons from the tenant's side, against API.md."""

import pytest

from conftest import unique


def subscribe(client, plan_id, name="prod"):
    return client.post("/api/v1/subscriptions/", {"plan": plan_id, "name": name}, format="json")


def test_tenants_see_public_plans_only(signup, catalog):
    # given a private plan and a decommissioned one next to the public plan
    post = catalog["post"]
    private = post("plans", {"name": unique("Private "), "state": "private",
                             "cloud": catalog["cloud_a"]["id"]})
    gone = post("plans", {"name": unique("Old "), "state": "decommissioned",
                          "cloud": catalog["cloud_a"]["id"]})
    owner = signup()
    # when
    plans = owner.get("/api/v1/plans/").json()["results"]
    # then
    ids = {p["id"] for p in plans}
    assert catalog["plan"]["id"] in ids
    assert private["id"] not in ids and gone["id"] not in ids
    shown = next(p for p in plans if p["id"] == catalog["plan"]["id"])
    assert shown["quotas"] == catalog["quotas"]
    assert "cloud" not in shown  # the fabric stays the provider's business


def test_a_private_plan_offered_to_a_tenant_is_visible_to_it_alone(signup, catalog):
    lucky, other = signup(), signup()
    private = catalog["post"]("plans", {"name": unique("Deal "), "state": "private",
                                        "cloud": catalog["cloud_a"]["id"],
                                        "offered_to": [lucky.tenant["id"]]})
    assert private["id"] in {p["id"] for p in lucky.get("/api/v1/plans/").json()["results"]}
    assert subscribe(lucky, private["id"]).status_code == 201
    assert subscribe(other, private["id"]).status_code == 404


def test_subscribe_and_see_the_quota(signup, catalog, commission):
    owner = signup()
    response = subscribe(owner, catalog["plan"]["id"])
    assert response.status_code == 201
    subscription = response.json()
    # provisioning, with the job that commissions it, until that job has run
    assert subscription["state"] == "provisioning" and subscription["job"]
    assert subscription["plan"] == catalog["plan"]["id"]
    job = owner.get(f"/api/v1/jobs/{subscription['job']}/").json()
    assert job["runbook"] == "subscription.commission"
    commission(subscription["id"])
    assert owner.get(f"/api/v1/subscriptions/{subscription['id']}/").json()["state"] == "active"
    quota = owner.get(f"/api/v1/subscriptions/{subscription['id']}/quota/").json()
    assert quota == {d: {"limit": n, "used": 0, "burst": 0} for d, n in catalog["quotas"].items()}


def test_subscribing_to_an_unknown_private_or_bad_plan(signup, catalog):
    owner = signup()
    private = catalog["post"]("plans", {"name": unique("Hidden "), "state": "private",
                                        "cloud": catalog["cloud_a"]["id"]})
    assert subscribe(owner, private["id"]).status_code == 404
    assert subscribe(owner, "00000000-0000-0000-0000-000000000000").status_code == 404
    bad = subscribe(owner, "not-a-uuid")
    assert bad.status_code == 400 and "plan" in bad.json()["errors"]


def test_a_decommissioned_plan_takes_no_subscriptions(signup, staff, catalog):
    owner = signup()
    staff.patch(f"/api/v1/admin/plans/{catalog['plan']['id']}/", {"state": "decommissioned"},
                format="json")
    response = subscribe(owner, catalog["plan"]["id"])
    assert response.status_code == 409
    assert response.json()["type"].endswith("/plan-decommissioned")


def test_a_full_plan_is_409(signup, catalog):
    plan = catalog["post"]("plans", {"name": unique("One "), "state": "public",
                                     "cloud": catalog["cloud_a"]["id"], "max_subscriptions": 1})
    assert subscribe(signup(), plan["id"]).status_code == 201
    response = subscribe(signup(), plan["id"])
    assert response.status_code == 409
    assert response.json()["type"].endswith("/plan-full")


def test_quota_addon_raises_limits_and_detach_lowers_them(signup, catalog, commission):
    owner = signup()
    sid = subscribe(owner, catalog["plan"]["id"]).json()["id"]
    commission(sid)
    # when
    response = owner.post(f"/api/v1/subscriptions/{sid}/addons/",
                          {"addon": catalog["extra"]["id"]}, format="json")
    # then
    assert response.status_code == 201
    assert catalog["extra"]["id"] in response.json()["addons"]
    assert response.json()["job"] is None  # a quota add-on starts no job
    quota = owner.get(f"/api/v1/subscriptions/{sid}/quota/").json()
    assert quota["vcpus"]["limit"] == catalog["quotas"]["vcpus"] + 4
    assert quota["vms"]["limit"] == catalog["quotas"]["vms"] + 2
    again = owner.post(f"/api/v1/subscriptions/{sid}/addons/",
                       {"addon": catalog["extra"]["id"]}, format="json")
    assert again.status_code == 409
    assert owner.delete(
        f"/api/v1/subscriptions/{sid}/addons/{catalog['extra']['id']}/").status_code == 204
    quota = owner.get(f"/api/v1/subscriptions/{sid}/quota/").json()
    assert quota["vcpus"]["limit"] == catalog["quotas"]["vcpus"]


def test_an_addon_the_plan_does_not_offer_is_400(signup, catalog):
    owner = signup()
    sid = subscribe(owner, catalog["plan"]["id"]).json()["id"]
    other = catalog["post"]("addons", {"name": unique("Unlisted "), "kind": "quota"})
    response = owner.post(f"/api/v1/subscriptions/{sid}/addons/", {"addon": other["id"]},
                          format="json")
    assert response.status_code == 400
    assert "addon" in response.json()["errors"]


def test_plan_quota_change_reaches_subscriptions_and_may_go_below_use(signup, staff, catalog):
    from plans.models import QuotaLedger

    owner = signup()
    sid = subscribe(owner, catalog["plan"]["id"]).json()["id"]
    QuotaLedger.objects.filter(subscription_id=sid, dimension="vms").update(used=3)
    response = staff.patch(f"/api/v1/admin/plans/{catalog['plan']['id']}/",
                           {"quotas": {"vms": 1}}, format="json")
    assert response.status_code == 200
    quota = owner.get(f"/api/v1/subscriptions/{sid}/quota/").json()
    assert quota["vms"] == {"limit": 1, "used": 3, "burst": 0}
    assert quota["vcpus"]["limit"] == catalog["quotas"]["vcpus"]


def test_provider_suspends_and_resumes(signup, staff, catalog, commission):
    owner = signup()
    sid = subscribe(owner, catalog["plan"]["id"]).json()["id"]
    commission(sid)
    assert staff.post(f"/api/v1/admin/subscriptions/{sid}/suspend/").json()["state"] == \
        "suspended"
    assert owner.get(f"/api/v1/subscriptions/{sid}/").json()["state"] == "suspended"
    again = staff.post(f"/api/v1/admin/subscriptions/{sid}/suspend/")
    assert again.status_code == 409
    addon = owner.post(f"/api/v1/subscriptions/{sid}/addons/",
                       {"addon": catalog["extra"]["id"]}, format="json")
    assert addon.status_code == 409
    assert staff.post(f"/api/v1/admin/subscriptions/{sid}/resume/").json()["state"] == "active"


@pytest.mark.parametrize("role, status", [
    ("owner", 201), ("admin", 201), ("operator", 403), ("reader", 403)])
def test_who_may_subscribe(signup, catalog, role, status):
    from rest_framework.test import APIClient

    owner = signup()
    client = owner.client
    if role != "owner":
        # an invited member accepts, and gets a token with the password it chose
        email = f"{role}-{owner.tenant['id'][:8]}@example.com"
        invited = owner.post("/api/v1/tenant/members/", {"email": email, "role": role},
                             format="json").json()
        client = APIClient()
        accepted = client.post("/api/v1/auth/invitations/accept/", {
            "token": invited["invitation"]["token"], "password": "a long member password"},
            format="json")
        assert accepted.status_code == 200, accepted.content
        key = client.post("/api/v1/auth/token/", {"email": email,
                                                  "password": "a long member password"},
                          format="json").json()["token"]
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert subscribe(client, catalog["plan"]["id"]).status_code == status
    assert client.get("/api/v1/subscriptions/").status_code == 200


def test_staff_without_a_tenant_cannot_use_tenant_endpoints(staff, db):
    response = staff.get("/api/v1/subscriptions/")
    assert response.status_code == 403
    assert "not a member" in response.json()["detail"]


def test_another_tenants_subscription_is_404_on_every_endpoint(signup, catalog, commission):
    # given tenant A's subscription
    alice, bob = signup(), signup()
    sid = subscribe(alice, catalog["plan"]["id"]).json()["id"]
    commission(sid)
    addon = catalog["extra"]["id"]
    alice.post(f"/api/v1/subscriptions/{sid}/addons/", {"addon": addon}, format="json")
    # then B learns nothing about it
    calls = [
        bob.get(f"/api/v1/subscriptions/{sid}/"),
        bob.get(f"/api/v1/subscriptions/{sid}/quota/"),
        bob.post(f"/api/v1/subscriptions/{sid}/addons/", {"addon": addon}, format="json"),
        bob.delete(f"/api/v1/subscriptions/{sid}/addons/{addon}/"),
        bob.post(f"/api/v1/subscriptions/{sid}/retry/"),
    ]
    for response in calls:
        assert response.status_code == 404, response.request
        assert response["Content-Type"] == "application/problem+json"
    assert bob.get("/api/v1/subscriptions/").json()["count"] == 0
    # and A's subscription still has its add-on
    assert addon in alice.get(f"/api/v1/subscriptions/{sid}/").json()["addons"]


def test_an_exhausted_external_pool_is_a_409_and_nothing_is_made(signup, catalog):
    # given a cloud whose external pool has one address beside the router
    cloud = catalog["post"]("clouds", {
        "name": unique("small-pool-"), "stamp": catalog["stamp_a"]["id"],
        "capacity": {"vcpus": 8, "memory_mb": 8192, "storage_gb": 100, "vms": 4},
        "external_pool_cidr": "198.51.100.0/30"})
    plan = catalog["post"]("plans", {"name": unique("Pool "), "state": "public",
                                     "cloud": cloud["id"]})
    assert subscribe(signup(), plan["id"]).status_code == 201
    # when a second tenant subscribes
    late = signup()
    response = subscribe(late, plan["id"])
    # then it is told clearly, and nothing of it remains
    assert response.status_code == 409
    assert response.json()["type"].endswith("/pool-exhausted")
    assert late.get("/api/v1/subscriptions/").json()["count"] == 0
    assert late.get("/api/v1/jobs/").json()["count"] == 0
