"""A new tenant runs a VM from the browser, on a real Celery worker and a stampsim stamp:
subscribe, watch the commission, create a network and a VM, stop it, take a checkpoint,
delete it and see the quota come back. The provider then finds the jobs."""

import re

import pytest
from playwright.sync_api import expect

from conftest import unique
from tests.browser.conftest import log_in_staff

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PASSWORD = "a good long password"
JOB_TIMEOUT_MS = 60_000  # a job on stampsim takes seconds; a cold worker a few more
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def world(fabric, staff):
    """A stampsim stamp with a worker, a public plan on it, and an image in the plan."""
    world = fabric()
    template = staff.post("/api/v1/admin/templates/", {
        "name": "debian-12", "os": "Debian 12", "cloud": world["cloud"]["id"], "image": "deb",
        "min_vcpus": 1, "min_memory_mb": 512, "min_disk_gb": 10}, format="json").json()
    response = staff.patch(f"/api/v1/admin/plans/{world['plan']['id']}/",
                           {"templates": [template["id"]]}, format="json")
    assert response.status_code == 200, response.content
    return world


@pytest.fixture
def shoot(page, screenshot):
    """``shoot(name)``: the page at a laptop's width, then at a phone's."""

    def take(name: str) -> None:
        screenshot(page, name)
        page.set_viewport_size(PHONE)
        screenshot(page, f"{name}-phone")
        page.set_viewport_size(LAPTOP)

    return take


def nav(page):
    return page.get_by_role("navigation", name="Tenant portal")


def messages(page):
    return page.locator("#messages")


def wait_for_job(page) -> None:
    """On a job's page: it follows the job by itself until it has ended."""
    expect(page.locator(".job-now")).to_contain_text("Succeeded", timeout=JOB_TIMEOUT_MS)
    expect(page.get_by_role("progressbar", name="Progress")).to_have_attribute(
        "aria-valuenow", "100")
    expect(page.locator("#job-live")).not_to_have_attribute("hx-trigger", "every 1s")


def test_a_tenant_runs_a_vm_on_the_fabric(page, browser, live_server, world, staff, shoot,
                                         screenshot):
    plan = world["plan"]["name"]
    email = f"{unique('erin')}@example.com"

    # sign up and subscribe
    page.goto("/signup/")
    page.get_by_label("Your name").fill("Erin")
    page.get_by_label("Work email").fill(email)
    page.get_by_label("Organisation").fill(unique("Fabrikam "))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("link", name=f"Subscribe to {plan}").click()
    page.get_by_label("Name").fill("production")
    page.get_by_role("button", name=re.compile("^Subscribe for")).click()
    expect(page.get_by_role("heading", name=re.compile("production"))).to_be_visible()

    # the commission job: followed live on its page until it has finished
    page.get_by_role("link", name="Follow the job").click()
    expect(page.get_by_role("heading", name="Commission subscription production")).to_be_visible()
    expect(page.locator(".steps > li")).to_have_count(6)
    wait_for_job(page)
    expect(page.locator(".steps .badge")).to_have_text(["Succeeded"] * 6)
    shoot("job-detail")

    # a network of its own
    nav(page).get_by_role("link", name="Networks").click()
    page.get_by_role("textbox", name="Name", exact=True).fill("app")
    page.get_by_role("textbox", name="CIDR", exact=True).fill("10.2.0.0/24")
    page.get_by_role("button", name="Create network").click()
    expect(messages(page)).to_contain_text("The network “app” is being created.")
    app_row = page.get_by_role("row", name=re.compile(r"^app "))
    expect(app_row).to_contain_text("Ready", timeout=JOB_TIMEOUT_MS)  # the list follows it
    expect(page.get_by_role("row", name=re.compile(r"^default "))).to_contain_text("Default")
    shoot("networks")

    # a VM: the form shows the quota it would use before it is sent
    nav(page).get_by_role("link", name="Virtual machines").click()
    page.get_by_role("link", name="New VM").first.click()
    expect(page.get_by_role("heading", name="New VM")).to_be_visible()
    page.get_by_role("textbox", name="Name", exact=True).fill("web-1")
    network = page.get_by_role("combobox", name="Network", exact=True)
    network.select_option(label="app · 10.2.0.0/24")
    vcpus = page.get_by_role("progressbar", name="vCPUs")
    size = lambda name: page.get_by_role("spinbutton", name=name)  # noqa: E731
    size("vCPUs").fill("9")
    expect(vcpus).to_have_attribute("aria-valuetext", "0 used + 9 of 8: 1 over the limit")
    expect(page.get_by_text("This does not fit")).to_be_visible()
    size("vCPUs").fill("2")
    size("Memory (MB)").fill("2048")
    size("Disk (GB)").fill("20")
    expect(vcpus).to_have_attribute("aria-valuetext", "0 used + 2 of 8: 6 left after this")
    expect(page.get_by_role("progressbar", name="Storage")).to_have_attribute(
        "aria-valuetext", "0 used + 20 of 200 GB: 180 GB left after this")
    expect(page.get_by_text("This fits what is left.")).to_be_visible()
    shoot("vm-form")
    page.get_by_role("button", name="Create VM").click()

    # its page shows it provisioning; its job is followed to the end
    expect(page.get_by_role("heading", name=re.compile("^web-1"))).to_be_visible()
    expect(messages(page)).to_contain_text("“web-1” is being created.")
    page.get_by_role("link", name="Create VM web-1").first.click()
    wait_for_job(page)
    expect(page.locator(".step-log")).to_contain_text("10.2.0.2")
    page.get_by_role("link", name="Go to the VM").click()
    heading = page.get_by_role("heading", name=re.compile("^web-1"))
    expect(heading).to_contain_text("Running")
    expect(page.get_by_role("button", name="Start", exact=True)).to_have_count(0)
    shoot("vm-detail")

    # its subscription lists it with the networks
    page.get_by_role("region", name="Details").get_by_role("link", name="production").click()
    vms = page.get_by_role("region", name=re.compile("^Virtual machines"))
    expect(vms.get_by_role("listitem")).to_contain_text(["web-1"])
    expect(page.get_by_role("region", name=re.compile("^Networks"))).to_contain_text("10.2.0.0/24")
    shoot("subscription-resources")
    vms.get_by_role("link", name="web-1").click()

    # stop it: the page follows the job and offers what a stopped VM can do
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(messages(page)).to_contain_text("“web-1” is stopping.")
    expect(heading).to_contain_text("Stopped", timeout=JOB_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Start", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Stop", exact=True)).to_have_count(0)

    # take a checkpoint
    page.get_by_label("Checkpoint name").fill("before upgrade")
    page.get_by_role("button", name="Take checkpoint").click()
    checkpoint = page.get_by_role("region", name="Checkpoints").get_by_role(
        "listitem").filter(has_text="before upgrade")
    expect(checkpoint).to_contain_text("Ready", timeout=JOB_TIMEOUT_MS)
    expect(checkpoint.get_by_role("link", name="Restore before upgrade")).to_be_visible()
    shoot("vm-checkpoint")

    # delete the VM, after confirming in the dialog
    page.get_by_role("link", name="Delete web-1").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete the VM “web-1” and its checkpoints?")
    dialog.get_by_role("button", name="Delete VM").click()
    expect(page).to_have_url(re.compile(r"/vms/$"))
    expect(messages(page)).to_contain_text("“web-1” is being deleted.")
    shoot("vm-list")
    expect(page.get_by_role("row", name=re.compile("web-1"))).to_have_count(
        0, timeout=JOB_TIMEOUT_MS)
    expect(page.get_by_text("No VM yet.")).to_be_visible()

    # the quota is back on the dashboard; the network keeps its one
    nav(page).get_by_role("link", name="Overview").click()
    quota = page.get_by_role("region", name="Quota by subscription")
    expect(quota.get_by_role("progressbar", name="vCPUs")).to_have_attribute(
        "aria-valuetext", "0 of 8")
    expect(quota.get_by_role("progressbar", name="Snapshots")).to_have_attribute(
        "aria-valuetext", "0 of 4")
    expect(quota.get_by_role("progressbar", name="Networks")).to_have_attribute(
        "aria-valuetext", "1 of 3")
    expect(page.get_by_role("region", name="Recent jobs")).to_contain_text("Delete VM web-1")
    shoot("dashboard-resources")
    nav(page).get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("row", name=re.compile("Create VM web-1"))).to_contain_text(
        "Succeeded")
    shoot("jobs")

    # the provider sees the same jobs, with the tenant and the stamp
    provider = browser.new_context(base_url=live_server.url, viewport=LAPTOP).new_page()
    log_in_staff(provider, staff)
    provider.get_by_role("navigation", name="Provider admin").get_by_role(
        "link", name="Jobs").click()
    provider.get_by_label("Runbook").select_option("vm.create")
    row = provider.get_by_role("row", name=re.compile("Create VM web-1"))
    expect(row).to_contain_text(world["stamp"]["name"])
    expect(provider.get_by_role("row")).to_have_count(2)  # the header and the one job
    screenshot(provider, "provider-jobs")
    row.get_by_role("link", name="Create VM web-1").click()
    expect(provider.locator(".job-now")).to_contain_text("Succeeded")
    screenshot(provider, "provider-job-detail")
    provider.context.close()
