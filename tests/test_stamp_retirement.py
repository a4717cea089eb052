"""Retiring a stamp: ``enabled: false`` places nothing new on its clouds while what runs
there keeps running; ``DELETE`` removes a stamp that nothing uses, and otherwise says
what does."""

import re

import pytest
from django.test import Client

from base.models import AuditEvent
from conftest import unique, web_login
from fabric.models import Stamp, StampCheck
from plans.models import Subscription, SubscriptionAddOn
from tests.test_runbooks_integration import commission_job, subscribe, wait_job


def disable(staff, stamp) -> dict:
    response = staff.patch(f"/api/v1/admin/stamps/{stamp['id']}/", {"enabled": False},
                           format="json")
    assert response.status_code == 200, response.content
    assert response.json()["enabled"] is False
    return response.json()


def problem_code(response) -> str:
    return response.json()["type"].rsplit("/", 1)[-1]


@pytest.fixture
def provider(staff) -> Client:
    return web_login(staff.user)


# --- enabled ---------------------------------------------------------------------------

def test_a_stamp_takes_new_work_until_the_provider_says_otherwise(staff, catalog):
    assert catalog["stamp_a"]["enabled"] is True
    listed = staff.get("/api/v1/admin/stamps/", {"enabled": "false"}).json()
    assert listed["count"] == 0
    disable(staff, catalog["stamp_a"])
    listed = staff.get("/api/v1/admin/stamps/", {"enabled": "false"}).json()
    assert [s["name"] for s in listed["results"]] == [catalog["stamp_a"]["name"]]


def test_no_new_subscription_on_a_disabled_stamp(staff, signup, catalog):
    # given the stamp of the plan's cloud is disabled
    disable(staff, catalog["stamp_a"])
    owner = signup()
    # when a tenant subscribes to the plan
    response = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"]},
                          format="json")
    # then it is refused with a reason a client can match on, and nothing was made
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert problem_code(response) == "stamp-disabled"
    assert "takes no new subscriptions" in response.json()["detail"]
    assert catalog["stamp_a"]["name"] not in response.json()["detail"]  # tenants see no stamps
    assert not Subscription.objects.filter(tenant_id=owner.tenant["id"]).exists()
    # and once the stamp is enabled again, the same request succeeds
    staff.patch(f"/api/v1/admin/stamps/{catalog['stamp_a']['id']}/", {"enabled": True},
                format="json")
    assert owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"]},
                      format="json").status_code == 201


def test_no_new_dr_protection_on_a_disabled_recovery_stamp(staff, signup, catalog):
    # given a subscription whose plan offers DR recovering to stamp B, and B disabled
    owner = signup()
    subscription = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"]},
                              format="json").json()
    disable(staff, catalog["stamp_b"])
    # when the tenant attaches the DR add-on
    response = owner.post(f"/api/v1/subscriptions/{subscription['id']}/addons/",
                          {"addon": catalog["dr"]["id"]}, format="json")
    # then
    assert response.status_code == 409
    assert problem_code(response) == "stamp-disabled"
    assert "takes no new protection" in response.json()["detail"]
    assert not SubscriptionAddOn.objects.filter(subscription_id=subscription["id"]).exists()
    # a quota add-on, which places nothing, is still attached
    assert owner.post(f"/api/v1/subscriptions/{subscription['id']}/addons/",
                      {"addon": catalog["extra"]["id"]}, format="json").status_code == 201


@pytest.mark.worker
def test_a_disabled_stamp_keeps_running_what_it_has(fabric, staff, signup):
    # given a commissioned subscription on a stampsim stamp, with a template to use
    world = fabric()
    template = staff.post("/api/v1/admin/templates/", {
        "name": "debian-12", "os": "Debian 12", "cloud": world["cloud"]["id"],
        "image": "img-debian"}, format="json").json()
    staff.patch(f"/api/v1/admin/plans/{world['plan']['id']}/",
                {"templates": [template["id"]]}, format="json")
    owner = signup()
    subscription = subscribe(owner, world["plan"])
    assert wait_job(owner, commission_job(owner, subscription["id"])["id"],
                    worker=world["worker"])["state"] == "succeeded"
    # when the provider disables the stamp
    disable(staff, world["stamp"])
    # then a new subscription is refused
    latecomer = signup()
    response = latecomer.post("/api/v1/subscriptions/", {"plan": world["plan"]["id"]},
                              format="json")
    assert response.status_code == 409 and problem_code(response) == "stamp-disabled"
    # but the existing subscription still gets a VM, built by the stamp's worker
    response = owner.post("/api/v1/vms/", {
        "subscription": subscription["id"], "name": "web-1", "template": template["id"],
        "vcpus": 1, "memory_mb": 1024, "disk_gb": 20}, format="json")
    assert response.status_code == 202, response.content
    job = wait_job(owner, response.json()["job"], worker=world["worker"])
    assert job["state"] == "succeeded", job["error"]
    assert owner.get(f"/api/v1/vms/{response.json()['id']}/").json()["state"] == "running"
    status, inventory = world["sim"].request("GET", "/v1/inventory")
    assert [vm["name"] for vm in inventory["vms"]] == ["web-1"]


# --- DELETE ----------------------------------------------------------------------------

def test_a_stamp_nothing_uses_is_deleted_with_its_history(staff, db):
    stamp = staff.post("/api/v1/admin/stamps/", {
        "name": "spare", "region": "west", "driver": "memory", "endpoint": "mem://spare"},
        format="json").json()
    staff.post(f"/api/v1/admin/stamps/{stamp['id']}/check/")
    assert StampCheck.objects.filter(stamp_id=stamp["id"]).count() == 1
    # when
    response = staff.delete(f"/api/v1/admin/stamps/{stamp['id']}/")
    # then
    assert response.status_code == 204
    assert staff.get(f"/api/v1/admin/stamps/{stamp['id']}/").status_code == 404
    assert not StampCheck.objects.filter(stamp_id=stamp["id"]).exists()
    # and the audit trail keeps who deleted it
    audit = AuditEvent.objects.filter(object_id=stamp["id"]).latest("pk")
    assert (audit.event, audit.detail, audit.actor.email) == (
        "stamp.deleted", {"deleted": "spare"}, staff.email)
    assert audit.before["name"] == "spare" and audit.after == {}


def test_a_stamp_in_use_is_409_naming_its_clouds_and_counting_its_jobs(staff, signup,
                                                                        catalog):
    # given stamp A with a second cloud, and three subscriptions (a commission job each)
    stamp = catalog["stamp_a"]
    second = catalog["post"]("clouds", {
        "name": unique("cloud-z-"), "stamp": stamp["id"],
        "capacity": {"vcpus": 1, "memory_mb": 1, "storage_gb": 1, "vms": 1}})
    for _ in range(3):
        assert signup().post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"]},
                             format="json").status_code == 201
    # when
    response = staff.delete(f"/api/v1/admin/stamps/{stamp['id']}/")
    # then
    assert response.status_code == 409
    assert problem_code(response) == "stamp-in-use"
    clouds = ", ".join(sorted([catalog["cloud_a"]["name"], second["name"]]))
    assert response.json()["detail"] == (
        f"Stamp '{stamp['name']}' is in use: clouds {clouds}; 3 jobs.")
    assert Stamp.objects.filter(pk=stamp["id"]).exists()


def test_another_tenant_cannot_delete_a_stamp(signup, catalog):
    response = signup().delete(f"/api/v1/admin/stamps/{catalog['stamp_b']['id']}/")
    assert response.status_code == 403
    assert Stamp.objects.filter(pk=catalog["stamp_b"]["id"]).exists()


# --- the provider portal ---------------------------------------------------------------

def test_the_stamp_list_deletes_with_the_same_rule(provider, staff, catalog):
    spare = staff.post("/api/v1/admin/stamps/", {
        "name": "spare-ui", "region": "west", "driver": "memory", "endpoint": "mem://spare-ui"},
        format="json").json()
    page = provider.get("/admin/stamps/").content.decode()
    assert f'/admin/stamps/{spare["id"]}/delete/' in page
    # a used stamp stays, and the provider is told why
    used = catalog["stamp_a"]
    response = provider.post(f"/admin/stamps/{used['id']}/delete/", follow=True)
    assert re.search(rf"Stamp &#x27;{used['name']}&#x27; is in use: cloud "
                     rf"{catalog['cloud_a']['name']}\.", response.content.decode())
    assert Stamp.objects.filter(pk=used["id"]).exists()
    # an unused one is deleted after the confirmation
    confirm = provider.get(f"/admin/stamps/{spare['id']}/delete/").content.decode()
    assert "Delete the stamp “spare-ui”?" in confirm
    response = provider.post(f"/admin/stamps/{spare['id']}/delete/", follow=True)
    assert "was deleted" in response.content.decode()
    assert not Stamp.objects.filter(pk=spare["id"]).exists()


def test_the_stamp_form_disables_a_stamp(provider, catalog):
    stamp = Stamp.objects.get(pk=catalog["stamp_a"]["id"])
    response = provider.post(f"/admin/stamps/{stamp.pk}/", {
        "name": stamp.name, "region": stamp.region, "driver": stamp.driver,
        "endpoint": stamp.endpoint})  # the "Takes new work" box unticked
    assert response.status_code == 302
    stamp.refresh_from_db()
    assert stamp.enabled is False
    assert "Takes no new work" in provider.get("/admin/stamps/").content.decode()
