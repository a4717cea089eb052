"""The web pages of self-service tasks: the provider publishes a task with its form; the
tenant's form is checked on the server as the API is; owners see the approvals queue."""

import pytest

from conftest import web_login
from provisioning.models import Task, TaskRun
from provisioning.tasks_menu import services
from provisioning.tests.conftest import make_snapshot, make_subscription, make_vm
from tenants.models import Role
from tenants.tests.factories import MembershipFactory


@pytest.fixture
def tenant_world(db):
    subscription = make_subscription()
    services.publish_builtins([subscription.plan])
    vm = make_vm(subscription, name="app-1")
    make_snapshot(vm)
    owner = MembershipFactory(tenant=subscription.tenant, role=Role.OWNER).user
    return {"subscription": subscription, "vm": vm, "owner": web_login(owner)}


def test_the_provider_publishes_a_runbook_as_a_task(staff):
    plan = make_subscription().plan
    client = web_login(staff.user)
    response = client.post("/admin/tasks/new/", {
        "slug": "diag", "title": "Diagnose", "description": "Look at a VM.",
        "runbook": "task.collect-diagnostics", "input_schema": "", "plans": [str(plan.pk)],
        "roles": ["owner", "admin"], "timeout_seconds": "120", "enabled": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    task = Task.objects.get(slug="diag")
    assert task.roles == ["owner", "admin"] and list(task.plans.all()) == [plan]
    assert task.input_schema["properties"]["vm"]["x-resource"] == "vm"
    assert "Diagnose" in client.get("/admin/tasks/").content.decode()
    # a schema outside the subset is refused on the form
    response = client.post("/admin/tasks/new/", {
        "slug": "bad", "title": "Bad", "runbook": "task.collect-diagnostics",
        "input_schema": '{"type": "object", "properties": {}, "additionalProperties": true}',
        "roles": ["owner"], "timeout_seconds": "60"})
    assert response.status_code == 200 and not Task.objects.filter(slug="bad").exists()


def test_the_tenants_form_refuses_a_bad_path_on_the_server(tenant_world):
    w = tenant_world
    page = w["owner"].get(f"/tasks/restore-file/?subscription={w['subscription'].pk}")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'type="date"' in html and "data-allowed" in html and "app-1" in html
    day = w["vm"].snapshots.get().created_at.date().isoformat()
    response = w["owner"].post("/tasks/restore-file/", {
        "subscription": str(w["subscription"].pk), "vm": str(w["vm"].pk), "day": day,
        "path": "/etc/../shadow"})
    assert response.status_code == 400
    assert 'data-testid="error-path"' in response.content.decode()
    assert not TaskRun.objects.exists()


def test_owners_see_the_approvals_queue(tenant_world):
    w = tenant_world
    snapshot = w["vm"].snapshots.get()
    operator = MembershipFactory(tenant=w["subscription"].tenant, role=Role.OPERATOR).user
    run = services.run_task("revert-to-checkpoint", subscription=w["subscription"],
                            inputs={"vm": str(w["vm"].pk), "snapshot": str(snapshot.pk)},
                            acting_user=operator)
    html = w["owner"].get("/task-runs/").content.decode()
    assert "Waiting for approval" in html and f"/task-runs/{run.pk}/approve/" in html
    assert "approve/" not in web_login(operator).get("/task-runs/").content.decode()
    response = w["owner"].post(f"/task-runs/{run.pk}/reject/", {"next": "/task-runs/"})
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.state == "rejected"

