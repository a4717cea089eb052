"""The provider publishes tasks (API.md, "Self-service tasks": ``admin/tasks/``): the input
schema is checked when it is saved, secrets are stored encrypted and never returned."""

import pytest
from django.db import connection

from provisioning.models import Task

BASE = {"slug": "restore-conf", "title": "Restore a config file",
        "runbook": "task.restore-file"}


def schema(**vm):
    return {"type": "object", "additionalProperties": False, "required": ["vm", "day", "path"],
            "properties": {"vm": {"type": "string", "x-resource": "vm", **vm},
                           "day": {"type": "string", "format": "date",
                                   "x-choices": "checkpoint-days"},
                           "path": {"type": "string",
                                    "pattern": r"^(?!.*(?:^|/)\.\.(?:/|$))/[^\x00]*$"}}}


def test_a_task_without_a_schema_takes_its_runbooks(staff, catalog):
    response = staff.post("/api/v1/admin/tasks/", {**BASE, "plans": [catalog["plan"]["id"]]},
                          format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["input_schema"]["properties"]["path"]["pattern"]
    assert body["roles"] == ["owner", "admin", "operator"] and body["enabled"] is True


@pytest.mark.parametrize("bad, where", [
    ({**schema(), "additionalProperties": True}, "input_schema.additionalProperties"),
    ({**schema(), "patternProperties": {}}, "input_schema"),
    (schema(oneOf=[]), "input_schema.properties.vm"),
    (schema(pattern="(unclosed"), "input_schema.properties.vm"),
    (schema(**{"x-resource": "stamp"}), "input_schema.properties.vm.x-resource"),
    ({**schema(), "required": ["vm", "day", "path", "ghost"]}, "input_schema.required"),
    ({**schema(), "properties": {**schema()["properties"], "extra": {"type": "string"}}},
     "input_schema.properties.extra"),
    ({**schema(), "required": ["vm", "day"]}, "input_schema.required"),
])
def test_a_schema_outside_the_subset_or_wider_than_the_runbook_is_400(staff, bad, where):
    response = staff.post("/api/v1/admin/tasks/", {**BASE, "input_schema": bad},
                          format="json")
    assert response.status_code == 400, response.content
    assert where in response.json()["errors"], response.json()
    assert not Task.objects.exists()


def test_a_runbook_that_cannot_run_as_a_task_is_400(staff):
    response = staff.post("/api/v1/admin/tasks/", {**BASE, "runbook": "subscription.commission"},
                          format="json")
    assert response.status_code == 400 and "runbook" in response.json()["errors"]


def test_secret_parameters_are_stored_encrypted_and_never_returned(staff):
    response = staff.post("/api/v1/admin/tasks/", {
        **BASE, "secret_parameters": {"api_key": "hunter2-very-secret"}}, format="json")
    assert response.status_code == 201, response.content
    assert "hunter2" not in response.content.decode()
    assert response.json()["secret_parameter_names"] == ["api_key"]
    task_id = response.json()["id"]
    listed = staff.get("/api/v1/admin/tasks/").content.decode()
    assert "hunter2" not in listed
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_parameters FROM provisioning_task")
        assert "hunter2" not in cursor.fetchone()[0]
    assert Task.objects.get(pk=task_id).secret_parameters == {"api_key": "hunter2-very-secret"}


def test_tenants_may_not_use_the_admin_api(signup):
    owner = signup()
    assert owner.get("/api/v1/admin/tasks/").status_code == 403
    assert owner.get("/api/v1/admin/task-runs/").status_code == 403
    assert owner.post("/api/v1/admin/tasks/", BASE, format="json").status_code == 403


def test_the_demo_data_publishes_the_built_in_tasks_to_the_demo_plans(db, settings):
    from django.core.management import call_command

    from plans.models import Plan

    call_command("demo", "--driver", "memory")
    call_command("demo", "--driver", "memory")  # idempotent
    assert set(Task.objects.values_list("slug", flat=True)) == {
        "restore-file", "revert-to-checkpoint", "reset-network", "resize-vm",
        "collect-diagnostics", "rotate-console-password"}
    for plan in Plan.objects.all():
        assert plan.tasks.count() == 6
