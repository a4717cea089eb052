"""The provider in the browser: overview, a new plan published, a subscription suspended."""

import re

import pytest
from playwright.sync_api import expect

from conftest import unique
from plans.models import Plan
from tests.browser.conftest import log_in_staff

pytestmark = pytest.mark.browser


def nav(page):
    return page.get_by_role("navigation", name="Provider admin")


def test_the_provider_runs_the_catalog(page, staff, catalog, signup, screenshot, commission):
    # given a tenant with an active subscription
    tenant = signup(tenant_name=unique("Initech "))
    response = tenant.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                      "name": "tps-reports"}, format="json")
    assert response.status_code == 201
    commission(response.json()["id"])

    # log in: staff land on the capacity overview
    log_in_staff(page, staff)
    expect(page.get_by_role("heading", name="Capacity and allocation")).to_be_visible()
    expect(page.get_by_role("progressbar").first).to_be_visible()

    # check a stamp: its health and capacity are recorded
    nav(page).get_by_role("link", name="Stamps").click()
    stamp = catalog["stamp_a"]["name"]
    page.get_by_role("button", name=f"Check {stamp}").click()
    expect(page.get_by_role("row", name=re.compile(stamp))).to_contain_text("Healthy")
    screenshot(page, "admin-stamps")
    nav(page).get_by_role("link", name="Overview").click()
    expect(page.get_by_role("region", name=stamp).get_by_role("progressbar")).to_have_count(8)
    screenshot(page, "admin-overview")
    nav(page).get_by_role("link", name="Clouds").click()
    expect(page.get_by_role("progressbar").first).to_be_visible()
    screenshot(page, "admin-clouds")

    # create a plan, then publish it
    name = unique("Gold ")
    nav(page).get_by_role("link", name="Plans").click()
    page.get_by_role("link", name="New plan").click()
    page.locator("#id_name").fill(name)
    page.locator("#id_cloud").select_option(label=catalog["cloud_a"]["name"])
    page.locator("#id_price_monthly").fill("19.50")
    page.locator("#id_quota_vcpus").fill("4")
    page.locator("#id_quota_memory_mb").fill("8192")
    page.locator("#id_quota_vms").fill("2")
    page.get_by_label(re.compile(r"^debian-12")).check()
    # offered to the tenant, found by the tenant search (the form lists no tenant itself)
    page.get_by_label("Find a tenant").fill("initech")
    page.get_by_label(tenant.tenant["name"]).check()
    screenshot(page, "admin-plan-form")
    page.get_by_role("button", name="Create plan").click()
    expect(page.get_by_role("row", name=re.compile(name))).to_be_visible()
    offered = Plan.objects.get(name=name).offered_to.values_list("pk", flat=True)
    assert [str(pk) for pk in offered] == [tenant.tenant["id"]]
    row = page.get_by_role("row", name=re.compile(name))
    expect(row).to_contain_text("Private")
    row.get_by_role("button", name=f"Publish {name}").click()
    expect(page.get_by_role("row", name=re.compile(name))).to_contain_text("Public")
    screenshot(page, "admin-plans")

    # find the tenant's subscription with the live search and suspend it
    nav(page).get_by_role("link", name="Subscriptions").click()
    page.get_by_label("Search subscriptions, tenants or plans").fill(tenant.tenant["name"])
    expect(page).to_have_url(re.compile(r"\?q="))
    expect(page.get_by_role("row")).to_have_count(2)  # header and the one match
    page.get_by_role("link", name="Suspend tps-reports").click()
    page.get_by_role("dialog").get_by_role("button", name="Suspend").click()
    expect(page.get_by_role("status")).to_contain_text("is suspended")
    expect(page.get_by_role("row", name=re.compile("tps-reports"))).to_contain_text("Suspended")
    screenshot(page, "admin-subscriptions")

    nav(page).get_by_role("link", name="Tenants").click()
    expect(page.get_by_role("link", name=tenant.tenant["name"])).to_be_visible()
    screenshot(page, "admin-tenants")


def test_a_tenant_is_refused_the_provider_portal(page, signup):
    owner = signup()
    from tenants.models import User

    user = User.objects.get(email=owner.email)
    user.set_password("a good long password")
    user.save()
    page.goto("/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill("a good long password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    response = page.goto("/admin/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="You can't open this page")).to_be_visible()
