"""``restore-file`` end to end: a real worker and a stampsim process (API.md, "Self-service
tasks"): write a file, checkpoint, change it, restore it from that day's checkpoint, read
it back equal."""

import pytest
from django.utils import timezone

from plans.models import Plan
from provisioning.tasks_menu import services
from tests.processes import wait_for
from tests.test_api_resources import settled
from tests.test_api_resources import tenant_world as tenant_world  # noqa: F401 - fixture

pytestmark = pytest.mark.worker


def write(sim, vm_fabric_id, path, content, key):
    status, answer = sim.request("POST", f"/v1/vms/{vm_fabric_id}/files",
                                 {"path": path, "content": content}, key=key)
    assert status == 202, answer


def read(sim, vm_fabric_id, path):
    status, answer = sim.request("GET", f"/v1/vms/{vm_fabric_id}/files?path={path}")
    assert status == 200, answer
    return answer["file"]["content"]


def test_restore_file_on_stampsim_brings_the_content_back(tenant_world, staff):
    from provisioning.models import VirtualMachine

    w = tenant_world
    owner, sid, worker, sim = w["owner"], w["subscription"]["id"], w["worker"], w["sim"]
    services.publish_builtins([Plan.objects.get(pk=w["plan"]["id"])])
    response = owner.post("/api/v1/vms/", {
        "subscription": sid, "name": "files-1", "template": w["template"]["id"], "vcpus": 1,
        "memory_mb": 1024, "disk_gb": 10}, format="json")
    settled(owner, response, worker)
    vm_id = response.json()["id"]
    fabric_id = VirtualMachine.objects.get(pk=vm_id).fabric_id
    # given a file, a checkpoint of it, and a change after it
    write(sim, fabric_id, "/etc/app.conf", "listen 443\n", "w1")
    settled(owner, owner.post(f"/api/v1/vms/{vm_id}/snapshots/", {"name": "before"},
                              format="json"), worker)
    write(sim, fabric_id, "/etc/app.conf", "broken", "w2")
    day = timezone.now().date().isoformat()
    menu = owner.get("/api/v1/tasks/", {"subscription": sid}).json()["results"]
    restore = next(t for t in menu if t["slug"] == "restore-file")
    assert day in restore["input_schema"]["properties"]["day"]["x-enum-by"]["vm"][vm_id]
    # when the file is restored from that day's checkpoint
    response = owner.post("/api/v1/tasks/restore-file/run/", {
        "subscription": sid, "inputs": {"vm": vm_id, "day": day, "path": "/etc/app.conf"}},
        format="json")
    assert response.status_code == 202, response.content
    url = f"/api/v1/task-runs/{response.json()['id']}/"
    run = wait_for(lambda: (r := owner.get(url).json())["state"] in ("succeeded", "failed")
                   and r, timeout=60, message="the task run did not end")
    # then it succeeded and the file reads back equal
    assert run["state"] == "succeeded", run
    assert read(sim, fabric_id, "/etc/app.conf") == "listen 443\n"
    diagnostics = staff.get(f"/api/v1/admin/task-runs/{run['id']}/").json()["diagnostics"]
    assert any(c["call"] == "restore_file" and "answer" in c
               for c in diagnostics["fabric_calls"])
