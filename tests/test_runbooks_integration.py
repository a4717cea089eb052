"""Runbooks on real processes: a Celery worker, stampsim over HTTP, the test database
(PostgreSQL and Redis in CI)."""

import ipaddress
from datetime import timedelta

import pytest
import time_machine

from fabric.models import Stamp
from provisioning import engine
from provisioning.models import ExternalAddress, Job, Site
from provisioning.reconcile import drift
from tests.processes import wait_for

pytestmark = pytest.mark.worker

TERMINAL = {"succeeded", "failed", "rolled_back", "cancelled"}


def subscribe(owner, plan):
    response = owner.post("/api/v1/subscriptions/", {"plan": plan["id"], "name": "prod"},
                          format="json")
    assert response.status_code == 201, response.content
    return response.json()


def commission_job(owner, subscription_id) -> dict:
    jobs = owner.get("/api/v1/jobs/", {"subscription": subscription_id}).json()["results"]
    assert [j["runbook"] for j in jobs] == ["subscription.commission"]
    return jobs[0]


def wait_job(client, job_id, *, timeout=60, worker=None, path="/api/v1/jobs/") -> dict:
    def ended():
        job = client.get(f"{path}{job_id}/").json()
        return job if job["state"] in TERMINAL else None

    try:
        return wait_for(ended, timeout=timeout, message=f"job {job_id} did not end")
    except AssertionError:
        if worker is not None:
            print(worker.log_tail())
        raise


def inventory(sim) -> dict:
    status, body = sim.request("GET", "/v1/inventory")
    assert status == 200
    return body


def no_drift(stamp_name):
    assert drift(Stamp.objects.get(name=stamp_name)) == []


def test_commission_builds_the_edge_with_the_first_free_pool_address(fabric, signup):
    # given a stamp that already holds the pool's second host for someone else
    world = fabric()
    sim = world["sim"]
    status, op = sim.request("POST", "/v1/containers", {"name": "foreign"}, key="pre-1")
    foreign = op["operation"]["result"]["id"]
    sim.request("POST", f"/v1/containers/{foreign}/nat-rules",
                {"internal_cidr": "10.9.0.0/24", "external_ip": "192.0.2.2"}, key="pre-2")
    owner = signup()
    # when a tenant subscribes
    subscription = subscribe(owner, world["plan"])
    job = wait_job(owner, commission_job(owner, subscription["id"])["id"],
                   worker=world["worker"])
    # then the commission ran every step on the stamp
    assert job["state"] == "succeeded", job["error"]
    assert [s["state"] for s in job["steps"]] == ["succeeded"] * 6
    assert job["progress"] == 1.0
    site = Site.objects.get(subscription_id=subscription["id"])
    assert site.state == "ready" and site.external_ip == "192.0.2.3"  # .1 router, .2 taken
    fabric_now = inventory(sim)
    container = next(c for c in fabric_now["containers"] if c["id"] == site.container_id)
    assert container["name"] == f"sub-{subscription['id']}"
    assert [g["external_ip"] for g in fabric_now["gateways"]] == ["192.0.2.3"]
    network = next(n for n in fabric_now["networks"] if n["id"] == site.network_id)
    assert network["cidr"] == "10.1.0.0/24" and network["kind"] == "routed"
    assert any(r["external_ip"] == "192.0.2.3" and r["internal_cidr"] == "10.1.0.0/24"
               for r in fabric_now["nat_rules"])
    assert [(r["direction"], r["action"]) for r in fabric_now["firewall_rules"]] == [
        ("outbound", "allow")]
    # the address the fabric held was recorded as taken (orphaned from the portal's view)
    assert ExternalAddress.objects.get(address="192.0.2.2").state == "fabric"


def test_a_failure_at_step_5_leaves_nothing_behind(fabric, signup):
    world = fabric()
    sim = world["sim"]
    sim.request("POST", "/v1/admin/faults", {"fail_op_next": {"firewall.create": 1}})
    owner = signup()
    subscription = subscribe(owner, world["plan"])
    job = wait_job(owner, commission_job(owner, subscription["id"])["id"],
                   worker=world["worker"])
    # then the job rolled back and says why
    assert job["state"] == "rolled_back"
    assert "Allow outbound traffic" in job["error"]
    assert [s["state"] for s in job["steps"]] == ["undone"] * 4 + ["failed", "pending"]
    # and the stamp has nothing left of it
    left = inventory(sim)
    assert left["containers"] == left["gateways"] == left["networks"] == []
    assert left["nat_rules"] == left["firewall_rules"] == []
    assert not ExternalAddress.objects.filter(cloud_id=world["cloud"]["id"]).exists()
    assert Site.objects.get(subscription_id=subscription["id"]).state == "failed"
    no_drift(world["sim"].name)


def test_retry_of_a_rolled_back_commission_succeeds(fabric, signup, staff):
    world = fabric()
    world["sim"].request("POST", "/v1/admin/faults", {"fail_op_next": {"nat.create": 1}})
    owner = signup()
    subscription = subscribe(owner, world["plan"])
    job_id = commission_job(owner, subscription["id"])["id"]
    assert wait_job(owner, job_id, worker=world["worker"])["state"] == "rolled_back"
    # when the provider retries it
    response = staff.post(f"/api/v1/admin/jobs/{job_id}/retry/")
    assert response.status_code == 202 and response.json()["run"] == 2
    # then
    assert wait_job(owner, job_id, worker=world["worker"])["state"] == "succeeded"
    assert len(inventory(world["sim"])["containers"]) == 1
    no_drift(world["sim"].name)


def test_a_worker_killed_mid_step_is_resumed_by_another_exactly_once(fabric, signup, workers):
    # given slow fabric operations, so a step is in flight when the worker dies
    world = fabric("--latency-ms", "700")
    owner = signup()
    subscription = subscribe(owner, world["plan"])
    job_id = commission_job(owner, subscription["id"])["id"]
    wait_for(lambda: Job.objects.get(pk=job_id).steps.get(index=3).state == "running",
             timeout=30, message="step 3 never started")
    # when the worker is killed with SIGKILL and a new one starts
    world["worker"].kill()
    fresh = workers([f"stamp.{world['sim'].name}"])
    wait_for(lambda: str(job_id) in engine.sweep().resumed, timeout=30,
             message="the sweeper never handed the job to a live worker")
    job = wait_job(owner, job_id, worker=fresh)
    # then it finished, resuming at step 3, and nothing was made twice
    assert job["state"] == "succeeded", job["error"]
    row = Job.objects.get(pk=job_id)
    assert row.attempts == 2
    assert [s.attempts for s in row.steps.order_by("index")] == [1, 1, 2, 1, 1, 1]
    fabric_now = inventory(world["sim"])
    assert len(fabric_now["containers"]) == 1 and len(fabric_now["gateways"]) == 1
    no_drift(world["sim"].name)


def test_stampsim_restarted_mid_runbook_keeps_its_state(fabric, signup):
    # given a stamp that refuses gateways for now (503: nothing recorded, retried)
    world = fabric()
    sim = world["sim"]
    sim.request("POST", "/v1/admin/faults", {"fail_rate": {"gateway.create": 1.0}})
    owner = signup()
    subscription = subscribe(owner, world["plan"])
    job_id = commission_job(owner, subscription["id"])["id"]
    wait_for(lambda: Job.objects.get(pk=job_id).steps.get(index=3).state == "running",
             timeout=30, message="step 3 never started")
    container_id = Site.objects.get(subscription_id=subscription["id"]).container_id
    # when the stamp is killed and restarted on the same data (its faults are gone)
    sim.kill()
    sim.restart()
    # then what it had is still there and the job completes
    assert [c["id"] for c in inventory(sim)["containers"]] == [container_id]
    job = wait_job(owner, job_id, worker=world["worker"])
    assert job["state"] == "succeeded", job["error"]
    assert [c["id"] for c in inventory(sim)["containers"]] == [container_id]
    no_drift(sim.name)


def test_a_stamp_that_does_not_answer_gives_an_error_naming_it(fabric, signup):
    from stampsim.testing import free_port

    world = fabric(endpoint=f"http://127.0.0.1:{free_port()}",
                   worker_env={"BUFFET_DRIVER_TIMEOUT": "2"})
    owner = signup()
    subscription = subscribe(owner, world["plan"])
    job = wait_job(owner, commission_job(owner, subscription["id"])["id"], timeout=60,
                   worker=world["worker"])
    assert job["state"] == "rolled_back"
    assert world["stamp"]["name"] in job["error"]
    assert "Create tenant container" in job["error"]


def test_decommission_removes_everything(fabric, signup, staff):
    world = fabric()
    owner = signup()
    subscription = subscribe(owner, world["plan"])
    wait_job(owner, commission_job(owner, subscription["id"])["id"], worker=world["worker"])
    # when the provider decommissions the subscription
    response = staff.delete(f"/api/v1/admin/subscriptions/{subscription['id']}/")
    assert response.status_code == 202
    assert response.json()["subscription"]["state"] == "deleting"
    job = wait_job(staff, response.json()["job"], worker=world["worker"],
                   path="/api/v1/admin/jobs/")
    # then
    assert job["state"] == "succeeded", job["error"]
    left = inventory(world["sim"])
    assert left["containers"] == left["gateways"] == left["networks"] == []
    assert left["nat_rules"] == left["firewall_rules"] == []
    assert owner.get(f"/api/v1/subscriptions/{subscription['id']}/").json()["state"] == \
        "deleted"
    assert not ExternalAddress.objects.filter(cloud_id=world["cloud"]["id"]).exists()
    no_drift(world["sim"].name)


def test_a_job_whose_publish_was_lost_is_published_by_the_relay_a_lease_later(
        fabric, signup, monkeypatch, settings):
    # given the web process died between commit and publish
    world = fabric()
    monkeypatch.setattr(engine.outbox, "publish", lambda job_id, **_: False)
    owner = signup()
    subscription = subscribe(owner, world["plan"])
    monkeypatch.undo()
    job_id = commission_job(owner, subscription["id"])["id"]
    published_at = Job.objects.get(pk=job_id).published_at
    assert published_at is not None  # written published at its commit
    # when the relay runs within a lease (the message may still be on its way), and once
    # a lease has passed
    settings.BUFFET_OUTBOX_GRACE_SECONDS = 0
    assert str(job_id) not in engine.sweep().published
    with time_machine.travel(published_at + timedelta(
            seconds=settings.BUFFET_JOB_LEASE_SECONDS + 1), tick=False):
        published = engine.sweep().published
    # then it is published then, and runs
    assert str(job_id) in published
    assert wait_job(owner, job_id, worker=world["worker"])["state"] == "succeeded"


def test_a_job_the_broker_refused_is_published_by_the_relay_after_the_grace(
        fabric, signup, monkeypatch, settings):
    # given a broker that refuses the commission job's message
    world = fabric()
    owner = signup()

    def refused(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(engine.delivery.run_job, "apply_async", refused)
    subscription = subscribe(owner, world["plan"])
    monkeypatch.undo()
    job_id = commission_job(owner, subscription["id"])["id"]
    # then the job is marked not published
    assert Job.objects.get(pk=job_id).published_at is None
    # and when the relay runs after the grace, it is published and runs
    settings.BUFFET_OUTBOX_GRACE_SECONDS = 0
    assert str(job_id) in engine.sweep().published
    assert wait_job(owner, job_id, worker=world["worker"])["state"] == "succeeded"


def test_two_subscriptions_get_different_addresses(fabric, signup):
    world = fabric()
    first, second = signup(), signup()
    jobs = []
    for owner in (first, second):
        subscription = subscribe(owner, world["plan"])
        jobs.append((owner, commission_job(owner, subscription["id"])["id"]))
    for owner, job_id in jobs:
        assert wait_job(owner, job_id, worker=world["worker"])["state"] == "succeeded"
    addresses = sorted(Site.objects.filter(cloud_id=world["cloud"]["id"]).values_list(
        "external_ip", flat=True), key=ipaddress.ip_address)
    assert addresses == ["192.0.2.2", "192.0.2.3"]
    no_drift(world["sim"].name)
