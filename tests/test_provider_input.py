"""The provider's input is validated once, in the models, and the admin API and the
provider's forms both answer with it: 400 naming the field, and nothing changed."""

import re

import pytest
from django.test import Client

from conftest import web_login
from fabric.models import Cloud, Stamp, Template
from plans.models import AddOn, Plan


def row(model, pk) -> dict:
    return model.objects.values().get(pk=pk)


def assert_refused(response, field: str) -> None:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"], response.json()


@pytest.fixture
def provider(staff) -> Client:
    return web_login(staff.user)


def field_error(response, field: str) -> str:
    page = re.sub(r"\s+", " ", response.content.decode())
    match = re.search(rf'id="id_{field}_error">(.*?)</div>', page)
    return match.group(1) if match else ""


# --- the API ---------------------------------------------------------------------------

def test_a_cloud_patched_to_a_non_network_is_400_and_unchanged(staff, signup, catalog):
    # given a cloud that a public plan is bound to
    cloud = catalog["cloud_a"]
    before = row(Cloud, cloud["id"])
    # when the provider PATCHes its default network to something that is not a network
    response = staff.patch(f"/api/v1/admin/clouds/{cloud['id']}/",
                           {"default_network_cidr": "µ"}, format="json")
    # then it is refused, naming the field, and the cloud is as it was
    assert_refused(response, "default_network_cidr")
    assert "CIDR notation" in response.json()["errors"]["default_network_cidr"][0]
    assert row(Cloud, cloud["id"]) == before
    # and tenants still subscribe to the plan on it
    owner = signup()
    assert owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"]},
                      format="json").status_code == 201


@pytest.mark.parametrize("body, field", [
    ({"default_network_cidr": "10.0.0.1/24"}, "default_network_cidr"),
    ({"default_network_cidr": "fd00::/64"}, "default_network_cidr"),
    ({"default_network_cidr": "8.8.8.0/24"}, "default_network_cidr"),
    ({"external_pool_cidr": "µ"}, "external_pool_cidr"),
    ({"external_pool_cidr": "203.0.113.9/32"}, "external_pool_cidr"),
    ({"external_pool_cidr": "10.0.0.0/28"}, "external_pool_cidr"),  # inside 10.0.0.0/24
    ({"capacity": {"vcpus": 0}}, "capacity.vcpus"),
    ({"capacity": {"vms": -1}}, "capacity.vms"),
    ({"capacity": {"memory_mb": 2**31}}, "capacity.memory_mb"),  # more than a column holds
    ({"overcommit": {"cpu": "0.5"}}, "overcommit.cpu"),
    ({"provider_networks": "external"}, "provider_networks"),
    ({"provider_networks": ["external", "external"]}, "provider_networks"),
    ({"provider_networks": ["lan\x00"]}, "provider_networks"),
    ({"name": "no spaces please"}, "name"),
])
def test_bad_cloud_input_is_400_naming_the_field_and_changes_nothing(staff, catalog, body,
                                                                      field):
    cloud = catalog["cloud_a"]
    before = row(Cloud, cloud["id"])
    assert_refused(staff.patch(f"/api/v1/admin/clouds/{cloud['id']}/", body, format="json"),
                   field)
    assert row(Cloud, cloud["id"]) == before


def test_a_cloud_with_valid_networks_is_taken_as_written(staff, catalog):
    response = staff.post("/api/v1/admin/clouds/", {
        "name": "valid-networks", "stamp": catalog["stamp_a"]["id"],
        "capacity": {"vcpus": 8, "memory_mb": 8192, "storage_gb": 100, "vms": 10},
        "default_network_cidr": "172.20.0.0/16", "external_pool_cidr": "198.51.100.0/30",
        "provider_networks": ["external", "backup"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["default_network_cidr"], body["external_pool_cidr"]) == (
        "172.20.0.0/16", "198.51.100.0/30")
    assert body["provider_networks"] == ["external", "backup"]


@pytest.mark.parametrize("body, field", [
    ({"region": "west\x07"}, "region"),
    ({"region": "  "}, "region"),
    ({"region": "line\nbreak"}, "region"),
    ({"driver": "simulated"}, "endpoint"),  # mem://… is not an http(s) URL
    ({"driver": "simulated", "endpoint": "http://stamp:99999"}, "endpoint"),
    ({"driver": "simulated", "endpoint": "http://user:pw@stamp:8101"}, "endpoint"),
    ({"name": "stamp a"}, "name"),
])
def test_bad_stamp_input_is_400_naming_the_field_and_changes_nothing(staff, catalog, body,
                                                                      field):
    stamp = catalog["stamp_a"]
    before = row(Stamp, stamp["id"])
    assert_refused(staff.patch(f"/api/v1/admin/stamps/{stamp['id']}/", body, format="json"),
                   field)
    assert row(Stamp, stamp["id"]) == before


def test_a_region_is_trimmed(staff, catalog):
    response = staff.patch(f"/api/v1/admin/stamps/{catalog['stamp_a']['id']}/",
                           {"region": "  north  "}, format="json")
    assert response.status_code == 200
    assert Stamp.objects.get(pk=catalog["stamp_a"]["id"]).region == "north"


@pytest.mark.parametrize("body, field", [
    ({"min_memory_mb": 0}, "min_memory_mb"),
    ({"min_disk_gb": 0}, "min_disk_gb"),
    ({"min_vcpus": 0}, "min_vcpus"),
    ({"min_memory_mb": 2**31}, "min_memory_mb"),  # on SQLite too, not only PostgreSQL
    ({"name": "debian\x1b[31m"}, "name"),
    ({"os": "\t"}, "os"),
])
def test_bad_template_input_is_400(staff, catalog, body, field):
    template = catalog["template"]
    before = row(Template, template["id"])
    assert_refused(staff.patch(f"/api/v1/admin/templates/{template['id']}/", body,
                               format="json"), field)
    assert row(Template, template["id"]) == before


@pytest.mark.parametrize("body, field", [
    ({"name": "Small\x00"}, "name"),
    ({"name": "Gold\u202e"}, "name"),
    ({"price_monthly": "-0.01"}, "price_monthly"),
    ({"quotas": {"vcpus": -1}}, "quotas.vcpus"),
    ({"max_subscriptions": -1}, "max_subscriptions"),
])
def test_bad_plan_input_is_400(staff, catalog, body, field):
    plan = catalog["plan"]
    before = row(Plan, plan["id"])
    assert_refused(staff.patch(f"/api/v1/admin/plans/{plan['id']}/", body, format="json"),
                   field)
    assert row(Plan, plan["id"]) == before


@pytest.mark.parametrize("body, field", [
    ({"name": "Extra\x7f"}, "name"),
    ({"price_monthly": "-5"}, "price_monthly"),
    ({"quotas": {"vms": -2}}, "quotas.vms"),
])
def test_bad_addon_input_is_400(staff, catalog, body, field):
    addon = catalog["extra"]
    before = row(AddOn, addon["id"])
    assert_refused(staff.patch(f"/api/v1/admin/addons/{addon['id']}/", body, format="json"),
                   field)
    assert row(AddOn, addon["id"]) == before


# --- the provider's forms: the same rules, next to the fields --------------------------

def cloud_form(catalog, **fields) -> dict:
    cloud = Cloud.objects.get(pk=catalog["cloud_a"]["id"])
    return {"name": cloud.name, "stamp": cloud.stamp_id, "vcpus": cloud.vcpus,
            "memory_mb": cloud.memory_mb, "storage_gb": cloud.storage_gb, "vms": cloud.vms,
            "overcommit_cpu": cloud.overcommit_cpu, "overcommit_memory": cloud.overcommit_memory,
            "default_network_cidr": cloud.default_network_cidr,
            "external_pool_cidr": cloud.external_pool_cidr, **fields}


@pytest.mark.parametrize("fields, field, says", [
    ({"default_network_cidr": "µ"}, "default_network_cidr", "CIDR notation"),
    ({"external_pool_cidr": "10.0.0.0/28"}, "external_pool_cidr", "Overlaps the default"),
    ({"vcpus": 0}, "vcpus", "greater than or equal to 1"),
])
def test_the_cloud_form_shows_the_models_rule_and_changes_nothing(provider, catalog, fields,
                                                                   field, says):
    cloud_id = catalog["cloud_a"]["id"]
    before = row(Cloud, cloud_id)
    response = provider.post(f"/admin/clouds/{cloud_id}/", cloud_form(catalog, **fields))
    assert response.status_code == 200
    assert says in field_error(response, field)
    assert row(Cloud, cloud_id) == before


def test_the_stamp_form_refuses_control_characters_and_a_wrong_endpoint(provider, catalog):
    response = provider.post("/admin/stamps/new/", {
        "name": "stamp-form", "region": "west\x07", "driver": "simulated",
        "endpoint": "ftp://10.0.0.5", "enabled": "on"})
    assert response.status_code == 200
    assert "U+0007" in field_error(response, "region")
    assert "http:// or https://" in field_error(response, "endpoint")
    assert not Stamp.objects.filter(name="stamp-form").exists()


def test_the_template_and_plan_forms_refuse_what_the_api_refuses(provider, catalog):
    response = provider.post("/admin/templates/new/", {
        "name": "alpine", "os": "Alpine", "cloud": catalog["cloud_a"]["id"],
        "image": "img-alpine", "min_vcpus": 1, "min_memory_mb": 0, "min_disk_gb": 1})
    assert "greater than or equal to 1" in field_error(response, "min_memory_mb")
    response = provider.post("/admin/plans/new/", {
        "name": "Bell\x07", "state": "private", "cloud": catalog["cloud_a"]["id"],
        "price_monthly": "-1", "quota_vcpus": 1, "quota_memory_mb": 1, "quota_storage_gb": 1,
        "quota_vms": 1, "quota_networks": 1, "quota_snapshots": 1, "max_vm_vcpus": 1,
        "max_vm_memory_mb": 1, "max_vm_disk_gb": 1})
    assert "U+0007" in field_error(response, "name")
    assert "greater than or equal to 0" in field_error(response, "price_monthly")
    assert not Template.objects.filter(name="alpine").exists()
    assert not Plan.objects.filter(name__startswith="Bell").exists()
