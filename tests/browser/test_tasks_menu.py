"""A tenant runs a task from the menu in the browser: restore a file from the checkpoint of
a day chosen with a date picker that offers only days with a checkpoint, and sees the
result. The provider sees the run's diagnostics. Memory-driver stamps; jobs run the moment
their transaction commits."""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from playwright.sync_api import expect

from fabric.drivers.memory import MemoryDriver
from plans.models import Plan
from provisioning import engine
from provisioning.engine import outbox
from provisioning.models import VirtualMachine
from provisioning.tasks_menu import services
from tests.browser.conftest import log_in_staff

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"  # the signup fixture's


@pytest.fixture
def world(page, catalog, signup, commission, monkeypatch):
    monkeypatch.setattr(outbox, "publish", lambda job_id, **_: engine.run(job_id))
    services.publish_builtins([Plan.objects.get(pk=catalog["plan"]["id"])])
    owner = signup()
    sid = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"]},
                     format="json").json()["id"]
    commission(sid)
    vm = owner.post("/api/v1/vms/", {
        "subscription": sid, "name": "app-1", "template": catalog["template"]["id"],
        "vcpus": 1, "memory_mb": 1024, "disk_gb": 10}, format="json").json()
    fabric_id = VirtualMachine.objects.get(pk=vm["id"]).fabric_id
    driver = MemoryDriver(catalog["stamp_a"]["name"], catalog["stamp_a"]["endpoint"])
    driver.write_file(key="w1", vm_id=fabric_id, path="/etc/app.conf", content="good\n")
    with time_machine.travel(datetime(2026, 11, 3, 9, 0, tzinfo=UTC), tick=False):
        response = owner.post(f"/api/v1/vms/{vm['id']}/snapshots/", {"name": "monday"},
                              format="json")
        assert response.status_code == 202, response.content
    driver.write_file(key="w2", vm_id=fabric_id, path="/etc/app.conf", content="bad")
    return {"owner": owner, "vm": vm, "driver": driver, "fabric_id": fabric_id}


def test_a_tenant_restores_a_file_from_the_menu(page, world, staff, screenshot):
    # given the owner logged in
    page.goto("/login/")
    page.get_by_label("Email").fill(world["owner"].email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # when it opens the menu: cards with what each task asks for
    page.get_by_role("navigation", name="Tenant portal").get_by_role("link",
                                                                     name="Tasks").click()
    card = page.get_by_role("article").filter(has_text="Restore a file")
    expect(card).to_contain_text("It asks for: VM, Day of the checkpoint, File")
    expect(page.get_by_role("article").filter(has_text="Revert a VM")).to_contain_text(
        "Needs approval")
    screenshot(page, "tasks-menu")
    card.get_by_role("link", name="Run Restore a file").click()
    # the form offers the VM and only the day with a checkpoint
    page.get_by_label("VM").select_option(label="app-1")
    day = page.get_by_label("Day of the checkpoint")
    expect(day).to_have_attribute("min", "2026-11-03")
    expect(day).to_have_attribute("max", "2026-11-03")
    # a day without a checkpoint is refused in the browser already
    day.fill("2026-11-04")
    page.get_by_label("File").fill("/etc/app.conf")
    page.get_by_role("button", name="Run the task").click()
    assert "Choose one of the days offered" in day.evaluate("e => e.validationMessage")
    expect(page).to_have_url(re.compile(r"/tasks/restore-file/"))  # not sent
    # the day with the checkpoint runs it
    day.fill("2026-11-03")
    page.get_by_role("button", name="Run the task").click()
    # then the run's page shows the result
    expect(page.get_by_test_id("task-result")).to_contain_text(
        "/etc/app.conf is back as it was in the checkpoint 'monday' of 2026-11-03.")
    expect(page.locator("#task-run-live")).to_contain_text("Succeeded")
    screenshot(page, "task-run")
    assert world["driver"].read_file(world["fabric_id"], "/etc/app.conf").content == "good\n"
    # and the run history lists it
    page.goto("/task-runs/")
    expect(page.get_by_role("table")).to_contain_text("Restore a file")


def test_the_provider_sees_the_runs_diagnostics(page, world, staff):
    response = world["owner"].post("/api/v1/tasks/collect-diagnostics/run/", {
        "subscription": world["vm"]["subscription"], "inputs": {"vm": world["vm"]["id"]}},
        format="json")
    assert response.status_code == 202, response.content
    log_in_staff(page, staff, "/admin/login/")
    page.goto("/admin/task-runs/")
    page.get_by_role("link", name="Collect diagnostics").click()
    expect(page.get_by_test_id("diagnostics")).to_contain_text("fabric_calls")
    expect(page.get_by_test_id("diagnostics")).to_contain_text("get_vm")
