"""A 202 describes the resource as the change left it, even when its job is quicker than
the answer: the job is published at commit, and a worker may end it (a deleted VM leaves
the tenant's view) before the view would read the resource again."""

import pytest

from provisioning import engine
from provisioning.engine import outbox
from provisioning.models import VirtualMachine


@pytest.fixture
def instant_jobs(monkeypatch):
    """Every job runs to its end the moment its transaction commits, as a worker that is
    faster than the web process would."""
    monkeypatch.setattr(outbox, "publish", lambda job_id, **_: engine.run(job_id))


@pytest.mark.django_db(transaction=True)
def test_a_delete_whose_job_ends_before_the_answer_still_answers_202(
        catalog, signup, commission, instant_jobs):
    owner = signup()
    sid = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"]},
                     format="json").json()["id"]
    commission(sid)
    created = owner.post("/api/v1/vms/", {
        "subscription": sid, "name": "web-1", "template": catalog["template"]["id"],
        "vcpus": 1, "memory_mb": 512, "disk_gb": 10}, format="json")
    assert created.status_code == 202, created.content
    vm = created.json()
    assert VirtualMachine.objects.get(pk=vm["id"]).state == "running"

    stopped = owner.post(f"/api/v1/vms/{vm['id']}/stop/")
    assert stopped.status_code == 202, stopped.content
    assert stopped.json()["state"] == "stopping"

    deleted = owner.delete(f"/api/v1/vms/{vm['id']}/")
    assert deleted.status_code == 202, deleted.content
    assert deleted.json()["state"] == "deleting" and deleted.json()["job"]
    assert VirtualMachine.objects.get(pk=vm["id"]).state == "deleted"  # the job did end
    assert owner.get(f"/api/v1/vms/{vm['id']}/").status_code == 404
