"""Self-service tasks against API.md ("Self-service tasks"), on memory-driver stamps whose
jobs run the moment their transaction commits."""

from datetime import UTC, datetime

import pytest
import time_machine
from rest_framework.test import APIClient

from fabric.drivers.memory import MemoryDriver
from provisioning import engine
from provisioning.engine import outbox
from provisioning.models import (
    ConsolePassword,
    Job,
    Snapshot,
    Task,
    TaskRun,
    VirtualMachine,
)
from provisioning.tasks_menu import choices, services
from tenants.models import Membership, Role
from tenants.tests.factories import MembershipFactory, token_key

pytestmark = pytest.mark.django_db(transaction=True)

DAY_ONE = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
DAY_TWO = datetime(2026, 11, 5, 14, 0, tzinfo=UTC)


@pytest.fixture
def instant_jobs(monkeypatch):
    monkeypatch.setattr(outbox, "publish", lambda job_id, **_: engine.run(job_id))


def _client_for(tenant_id, role: Role) -> APIClient:
    membership = MembershipFactory(tenant_id=tenant_id, role=role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_key(membership.user)}")
    return client


@pytest.fixture
def world(catalog, signup, commission, instant_jobs):
    """An owner's subscription with one running VM, the built-in tasks published to its
    plan, and an operator and a reader colleague."""
    from plans.models import Plan

    services.publish_builtins([Plan.objects.get(pk=catalog["plan"]["id"])])
    owner = signup()
    sid = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"]},
                     format="json").json()["id"]
    commission(sid)
    vm = owner.post("/api/v1/vms/", {
        "subscription": sid, "name": "app-1", "template": catalog["template"]["id"],
        "vcpus": 1, "memory_mb": 1024, "disk_gb": 10}, format="json").json()
    assert VirtualMachine.objects.get(pk=vm["id"]).state == "running"
    tenant_id = Membership.objects.get(user__email=owner.email).tenant_id
    return {"owner": owner, "sid": sid, "vm": vm, "catalog": catalog,
            "operator": _client_for(tenant_id, Role.OPERATOR),
            "reader": _client_for(tenant_id, Role.READER)}


def checkpoint(world, when: datetime, name: str) -> dict:
    with time_machine.travel(when, tick=False):
        response = world["owner"].post(f"/api/v1/vms/{world['vm']['id']}/snapshots/",
                                       {"name": name}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def driver_of(world) -> MemoryDriver:
    stamp = world["catalog"]["stamp_a"]
    return MemoryDriver(stamp["name"], stamp["endpoint"])


def fabric_id(world) -> str:
    return VirtualMachine.objects.get(pk=world["vm"]["id"]).fabric_id


def run(client, world, slug, inputs, **headers):
    return client.post(f"/api/v1/tasks/{slug}/run/", {"subscription": world["sid"],
                                                      "inputs": inputs}, format="json",
                       **headers)


def test_the_menu_lists_the_tasks_of_the_plan_with_choices_filled_in(world):
    # given a checkpoint on one day
    checkpoint(world, DAY_ONE, "nightly")
    # when the menu is asked for the subscription
    response = world["owner"].get("/api/v1/tasks/", {"subscription": world["sid"]})
    # then every built-in task is there, and restore-file offers that day only
    assert response.status_code == 200
    tasks = {t["slug"]: t for t in response.json()["results"]}
    assert set(tasks) == {"restore-file", "revert-to-checkpoint", "reset-network",
                          "resize-vm", "collect-diagnostics", "rotate-console-password"}
    assert tasks["revert-to-checkpoint"]["requires_approval"] is True
    schema = tasks["restore-file"]["input_schema"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["vm"]["enum"] == [world["vm"]["id"]]
    assert schema["properties"]["day"]["enum"] == ["2026-11-03"]
    assert schema["properties"]["day"]["x-enum-by"] == {"vm": {world["vm"]["id"]:
                                                               ["2026-11-03"]}}
    assert "enum" in tasks["resize-vm"]["input_schema"]["properties"]["size"]


def _refused(response, key):
    assert response.status_code == 400, response.content
    body = response.json()
    assert response["Content-Type"].startswith("application/problem+json")
    assert f"inputs.{key}" in body["errors"], body
    return body


@pytest.mark.parametrize("inputs, key", [
    ({"extra": 1}, "extra"),
    ({"vm": 42}, "vm"),
    ({"path": "etc/relative"}, "path"),
    ({"path": "/etc/../shadow"}, "path"),
    ({"path": "/"}, "path"),
    ({"day": "03/11/2026"}, "day"),
    ({"day": "2026-11-04"}, "day"),
])
def test_bad_input_is_400_naming_the_key_and_nothing_is_queued(world, inputs, key):
    # given a checkpoint on 2026-11-03
    checkpoint(world, DAY_ONE, "nightly")
    jobs, runs = Job.objects.count(), TaskRun.objects.count()
    good = {"vm": world["vm"]["id"], "day": "2026-11-03", "path": "/etc/app.conf"}
    # when one input is wrong
    body = _refused(run(world["owner"], world, "restore-file", {**good, **inputs}), key)
    # then nothing was recorded, and the answer does not echo the value
    assert Job.objects.count() == jobs and TaskRun.objects.count() == runs
    assert "shadow" not in str(body) and "03/11/2026" not in str(body)


def test_out_of_range_and_missing_inputs_are_400(world, staff):
    # given a task the provider narrowed to numbers and lengths
    response = staff.post("/api/v1/admin/tasks/", {
        "slug": "restore-conf", "title": "Restore a config file", "runbook": "task.restore-file",
        "plans": [world["catalog"]["plan"]["id"]],
        "input_schema": {"type": "object", "additionalProperties": False,
                         "required": ["vm", "day", "path"], "properties": {
                             "vm": {"type": "string", "x-resource": "vm"},
                             "day": {"type": "string", "format": "date",
                                     "x-choices": "checkpoint-days"},
                             "path": {"type": "string", "maxLength": 20,
                                      "pattern": r"^(?!.*(?:^|/)\.\.(?:/|$))/[^\x00]*$"}}}},
        format="json")
    assert response.status_code == 201, response.content
    # then a path too long, and a missing day, are named
    body = _refused(run(world["owner"], world, "restore-conf",
                        {"vm": world["vm"]["id"], "path": "/etc/" + "x" * 30}), "path")
    assert "inputs.day" in body["errors"]


def test_another_tenants_vm_is_404_and_an_unpublished_task_is_404(world, signup, catalog):
    other = signup()
    other_sid = other.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"]},
                           format="json").json()["id"]
    assert run(world["owner"], world, "collect-diagnostics",
               {"vm": "00000000-0000-4000-8000-000000000000"}).status_code == 404
    # a task not published to the plan
    Task.objects.get(slug="reset-network").plans.clear()
    assert run(world["owner"], world, "reset-network",
               {"vm": world["vm"]["id"]}).status_code == 404
    # another tenant's subscription
    response = other.post("/api/v1/tasks/collect-diagnostics/run/", {
        "subscription": world["sid"], "inputs": {"vm": world["vm"]["id"]}}, format="json")
    assert response.status_code == 404
    response = other.post("/api/v1/tasks/collect-diagnostics/run/", {
        "subscription": other_sid, "inputs": {"vm": world["vm"]["id"]}}, format="json")
    assert response.status_code == 404
    assert not TaskRun.objects.exists()


def test_a_reader_may_not_run_a_task(world):
    response = run(world["reader"], world, "collect-diagnostics", {"vm": world["vm"]["id"]})
    assert response.status_code == 403
    assert not TaskRun.objects.exists()


def test_restore_file_brings_the_file_back_as_the_checkpoint_had_it(world, staff):
    # given a file, a checkpoint of it, and a change after it
    driver = driver_of(world)
    driver.write_file(key="w1", vm_id=fabric_id(world), path="/etc/app.conf",
                      content="port=8080\n")
    checkpoint(world, DAY_ONE, "monday")
    driver.write_file(key="w2", vm_id=fabric_id(world), path="/etc/app.conf", content="oops")
    checkpoint(world, DAY_TWO, "wednesday")
    # when an operator restores it from the first day's checkpoint
    response = run(world["operator"], world, "restore-file", {
        "vm": world["vm"]["id"], "day": "2026-11-03", "path": "/etc/app.conf"},
        HTTP_IDEMPOTENCY_KEY="restore-1")
    assert response.status_code == 202, response.content
    answer = response.json()
    assert answer["job"] and response["Location"].endswith(f"/jobs/{answer['job']}/")
    # then the run succeeded and the file reads back as it was
    got = world["operator"].get(f"/api/v1/task-runs/{answer['id']}/").json()
    assert got["state"] == "succeeded", got
    assert got["result"]["outputs"] == {"path": "/etc/app.conf", "checkpoint": "monday",
                                        "size": 10}
    assert "diagnostics" not in got
    assert driver.read_file(fabric_id(world), "/etc/app.conf").content == "port=8080\n"
    # the same Idempotency-Key gives the same run
    again = run(world["operator"], world, "restore-file", {
        "vm": world["vm"]["id"], "day": "2026-11-03", "path": "/etc/app.conf"},
        HTTP_IDEMPOTENCY_KEY="restore-1")
    assert again.json()["id"] == answer["id"] and TaskRun.objects.count() == 1
    # the provider sees the diagnostics: steps and each fabric call with its timing
    diagnostics = staff.get(f"/api/v1/admin/task-runs/{answer['id']}/").json()["diagnostics"]
    assert diagnostics["inputs"]["path"] == "/etc/app.conf"
    assert [s["state"] for s in diagnostics["steps"]] == ["succeeded"] * 4
    calls = [c["call"] for c in diagnostics["fabric_calls"]]
    assert "restore_file" in calls and "list_checkpoints" in calls
    assert all("seconds" in c for c in diagnostics["fabric_calls"])


def test_a_checkpoint_gone_before_the_run_starts_fails_it_closed(world):
    cp = checkpoint(world, DAY_ONE, "monday")
    driver_of(world).write_file(key="w", vm_id=fabric_id(world), path="/a", content="1")
    Snapshot.objects.filter(pk=cp["id"]).update(fabric_id="cp-gone")
    response = run(world["owner"], world, "restore-file",
                   {"vm": world["vm"]["id"], "day": "2026-11-03", "path": "/a"})
    got = world["owner"].get(f"/api/v1/task-runs/{response.json()['id']}/").json()
    assert got["state"] == "failed" and "not on the stamp" in got["result"]["message"]


def test_approval_holds_the_run_approve_twice_is_409_reject_ends_it(world):
    cp = checkpoint(world, DAY_ONE, "monday")
    inputs = {"vm": world["vm"]["id"], "snapshot": cp["id"]}
    # an operator asks: the run waits, with no job
    held = run(world["operator"], world, "revert-to-checkpoint", inputs)
    assert held.status_code == 202, held.content
    assert held.json()["state"] == "pending_approval" and held.json()["job"] is None
    # one run at a time on the VM
    assert run(world["owner"], world, "collect-diagnostics",
               {"vm": world["vm"]["id"]}).status_code == 409
    # the operator cannot approve; the owner can, once
    url = f"/api/v1/task-runs/{held.json()['id']}/"
    assert world["operator"].post(f"{url}approve/").status_code == 403
    approved = world["owner"].post(f"{url}approve/")
    assert approved.status_code == 200 and approved.json()["job"]
    assert approved.json()["state"] == "succeeded"
    assert approved.json()["approved_by"] == world["owner"].email
    assert world["owner"].post(f"{url}approve/").status_code == 409
    # a second request is rejected
    second = run(world["operator"], world, "revert-to-checkpoint", inputs).json()
    rejected = world["owner"].post(f"/api/v1/task-runs/{second['id']}/reject/")
    assert rejected.json()["state"] == "rejected" and rejected.json()["job"] is None
    assert world["owner"].post(f"/api/v1/task-runs/{second['id']}/reject/").status_code == 409
    # each decision is audited once, with who made it
    from base.models import AuditEvent

    decisions = AuditEvent.objects.filter(event__in=["task_run.approved", "task_run.rejected"])
    assert sorted(e.event for e in decisions) == ["task_run.approved", "task_run.rejected"]
    assert {e.actor.email for e in decisions} == {world["owner"].email}
    assert AuditEvent.objects.filter(event="task_run.requested").count() == 2


def test_rotate_console_password_shows_it_once_and_stores_it_hashed(world, staff):
    response = run(world["owner"], world, "rotate-console-password", {"vm": world["vm"]["id"]})
    url = f"/api/v1/task-runs/{response.json()['id']}/"
    first = world["owner"].get(url).json()
    password = first["result"]["outputs"]["password"]
    assert first["state"] == "succeeded" and len(password) >= 16
    # never again, to anyone, and only its hash is kept
    assert "password" not in world["owner"].get(url).json()["result"]["outputs"]
    assert password not in str(staff.get(f"/api/v1/admin/task-runs/{response.json()['id']}/")
                               .json())
    stored = ConsolePassword.objects.get(vm_id=world["vm"]["id"]).password_hash
    assert password not in stored
    from django.contrib.auth.hashers import check_password
    assert check_password(password, stored)
    assert password not in str(TaskRun.objects.values_list("result", "diagnostics"))


def test_resize_vm_to_a_plan_size(world):
    response = run(world["owner"], world, "resize-vm",
                   {"vm": world["vm"]["id"], "size": "medium"})
    assert response.status_code == 202, response.content
    vm = VirtualMachine.objects.get(pk=world["vm"]["id"])
    assert (vm.vcpus, vm.memory_mb) == (2, 4096)
    _refused(run(world["owner"], world, "resize-vm",
                 {"vm": world["vm"]["id"], "size": "huge"}), "size")


def test_reset_network_and_collect_diagnostics_succeed(world):
    for slug in ("reset-network", "collect-diagnostics"):
        response = run(world["owner"], world, slug, {"vm": world["vm"]["id"]})
        got = world["owner"].get(f"/api/v1/task-runs/{response.json()['id']}/").json()
        assert got["state"] == "succeeded", got
    assert got["result"]["outputs"]["power_state"] == "running"
    # the list filters on the state as answered (the run follows its job)
    listed = world["owner"].get("/api/v1/task-runs/", {"state": "succeeded"}).json()
    assert listed["count"] == 2
    assert world["owner"].get("/api/v1/task-runs/", {"state": "queued"}).json()["count"] == 0


def test_choices_that_cannot_be_computed_refuse_the_run(world, monkeypatch):
    checkpoint(world, DAY_ONE, "monday")

    def broken(subscription):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(choices, "checkpoint_days", broken)
    response = run(world["owner"], world, "restore-file",
                   {"vm": world["vm"]["id"], "day": "2026-11-03", "path": "/a"})
    assert response.status_code == 409
    assert response.json()["type"].endswith("/task-choices-unavailable")
    assert not TaskRun.objects.exists()
    menu = world["owner"].get("/api/v1/tasks/", {"subscription": world["sid"]}).json()
    day = next(t for t in menu["results"] if t["slug"] == "restore-file")
    assert day["input_schema"]["properties"]["day"]["enum"] == []


def test_an_owner_hides_a_task_from_operators(world):
    response = world["owner"].post("/api/v1/tasks/reset-network/hide/",
                                   {"hidden_from": ["operator"]}, format="json")
    assert response.status_code == 200, response.content
    slugs = [t["slug"] for t in world["operator"].get("/api/v1/tasks/").json()["results"]]
    assert "reset-network" not in slugs
    # hidden from the role: it may not run it
    assert run(world["operator"], world, "reset-network",
               {"vm": world["vm"]["id"]}).status_code == 403
    assert world["operator"].post("/api/v1/tasks/collect-diagnostics/hide/",
                                  {"hidden_from": ["reader"]}, format="json").status_code == 403
