"""The DR pages in the browser: a tenant's protection with its lag chart and a drill,
the provider's list of every protection, a failover's confirmation and the network
mappings, at laptop and phone widths."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from conftest import unique
from dr_addon.models import DrillKind, DrReport, Protection
from plans.models import AddOn, Plan
from plans.tests.factories import SubscriptionFactory
from provisioning.models import Job, JobState
from tenants.models import Tenant
from tests.browser.conftest import log_in_staff
from tests.test_ui_dr import protect, report, seconds_ago

pytestmark = [pytest.mark.browser, pytest.mark.urls("tests.test_ui_dr")]

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}


def log_in(page, email: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def at_both_widths(page, screenshot, name: str) -> None:
    screenshot(page, name)
    page.set_viewport_size(PHONE)
    screenshot(page, f"{name}-phone")
    page.set_viewport_size(LAPTOP)


@pytest.fixture
def world(signup, catalog):
    """Two tenants with protected subscriptions: "erp" has a VM past its RPO target,
    "shop" runs well within it; "erp" also has a drill and an unplanned failover."""
    plan = Plan.objects.get(pk=catalog["plan"]["id"])
    addon = AddOn.objects.select_related("recovery_cloud").get(pk=catalog["dr"]["id"])
    owner = signup(tenant_name=unique("Contoso "))
    contoso = Tenant.objects.get(pk=owner.tenant["id"])
    erp = SubscriptionFactory(tenant=contoso, plan=plan, name="erp")
    protection = protect(erp, addon, lags=(25, 140, 610, 48, None))
    report(protection, outcome="passed", started_at=seconds_ago(7200),
           finished_at=seconds_ago(7140), details={"vms": 4, "duration_seconds": 58.3})
    report(protection, DrillKind.UNPLANNED, outcome="succeeded", data_loss_seconds=37.2,
           started_at=seconds_ago(3000), finished_at=seconds_ago(2890),
           details={"mode": "unplanned", "duration_seconds": 110})
    other = Tenant.objects.get(pk=signup(tenant_name=unique("Initech ")).tenant["id"])
    protect(SubscriptionFactory(tenant=other, plan=plan, name="shop"), addon, lags=(12, 30))
    unprotected = SubscriptionFactory(tenant=contoso, plan=plan, name="lab")
    return {"owner": owner, "erp": erp, "lab": unprotected, "addon": addon,
            "protection": protection}


def test_dr_pages_for_the_tenant_and_the_provider(page, staff, world, screenshot):
    erp = world["erp"]

    # the tenant's DR page: state, chart, VMs and reports
    log_in(page, world["owner"].email, "correct horse battery")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.goto(f"/subscriptions/{erp.pk}/dr/")
    expect(page.get_by_role("heading", name=re.compile("Disaster recovery"))).to_be_visible()
    chart = page.get_by_role("img", name="Replication lag per VM")
    expect(chart).to_be_visible()
    expect(page.get_by_role("table", name=re.compile("Protected VMs"))).to_contain_text("Past RPO")
    expect(page.get_by_role("table", name=re.compile("Drills and reports"))).to_contain_text(
        "Unplanned failover")
    at_both_widths(page, screenshot, "dr-tenant")

    # a report's details
    page.get_by_role("link", name="Unplanned failover").click()
    expect(page.get_by_text("Data-loss window")).to_be_visible()
    expect(page.get_by_text("37 s")).to_be_visible()
    screenshot(page, "dr-tenant-report")
    page.go_back()

    # a drill: confirm in the dialog, then the page follows the job
    page.get_by_role("link", name="Run test failover").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("isolated network")
    screenshot(page, "dr-tenant-confirm")
    dialog.get_by_role("button", name="Run test failover").click()
    expect(page.get_by_role("status").filter(has_text="has started")).to_be_visible()
    job = Job.objects.get(runbook="dr.test-failover", subscription=erp)
    expect(page.get_by_role("link", name="Follow the job")).to_have_attribute(
        "href", f"/jobs/{job.pk}/")
    screenshot(page, "dr-tenant-drill")
    # when a worker has run it, the page shows how it went on its own
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED, finished_at=timezone.now())
    DrReport.objects.filter(job=job).update(finished_at=timezone.now(), outcome="passed",
                                            details={"vms": 5})
    expect(page.get_by_text("A test failover is running")).to_be_hidden()
    expect(page.get_by_role("link", name="Run test failover")).to_be_visible()
    expect(page.get_by_role("table", name=re.compile("Drills and reports"))).to_contain_text(
        "Passed")

    # a subscription without DR says what it is
    page.goto(f"/subscriptions/{world['lab'].pk}/dr/")
    expect(page.get_by_role("heading", name="This subscription is not protected")).to_be_visible()
    expect(page.get_by_text(world["addon"].name)).to_be_visible()
    at_both_widths(page, screenshot, "dr-tenant-unprotected")

    # the provider: every protection, the lagging one first
    page.get_by_role("button", name="Log out").click()
    log_in_staff(page, staff)
    expect(page.get_by_role("heading", name="Capacity and allocation")).to_be_visible()
    page.goto("/admin/dr/")
    rows = page.get_by_role("row")
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_contain_text("erp")
    expect(rows.nth(1)).to_contain_text("Past RPO")
    at_both_widths(page, screenshot, "dr-provider-list")
    page.get_by_label("Lag").select_option("within")
    expect(page).to_have_url(re.compile(r"lag=within"))
    expect(page.get_by_role("row")).to_have_count(2)

    # a subscription: the same page, with failover buttons that say what they do
    page.goto("/admin/dr/")
    page.get_by_role("link", name="erp").click()
    expect(page.get_by_role("img", name="Replication lag per VM")).to_be_visible()
    page.get_by_role("group", name="Actions").get_by_role(
        "link", name="Unplanned failover").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("whatever they wrote since is lost")
    screenshot(page, "dr-provider-confirm")
    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_be_hidden()
    at_both_widths(page, screenshot, "dr-provider-status")
    assert Protection.objects.get(pk=world["protection"].pk).state == "protected"

    # the network mappings
    page.get_by_role("link", name="Disaster recovery").first.click()
    page.locator("#main").get_by_role("link", name="Network mappings").click()
    expect(page.get_by_role("row", name=re.compile("external"))).to_be_visible()
    at_both_widths(page, screenshot, "dr-provider-mappings")
