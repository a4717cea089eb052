"""A client generated from the served OpenAPI document by openapi-python-client runs a
tenant's day against a live server, a real Celery worker and a stampsim stamp: sign up, get
a token, subscribe, create a VM, stop and start it, take a checkpoint, resize it, delete it;
and its errors arrive as typed ProblemDetails (API.md, "General": "A client generated from
it by openapi-python-client parses every answer, errors included, into typed objects")."""

import importlib
import json
import subprocess
import sys
import uuid

import httpx
import pytest

from conftest import unique
from tests.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.xdist_group("generated-client")]

PACKAGE = "buffet_client"
JOB_TIMEOUT = 60  # a job on stampsim takes seconds; a cold worker a few more


@pytest.fixture
def generated(live_server, tmp_path):
    """The package openapi-python-client generates from the served schema, imported."""
    document = httpx.get(f"{live_server.url}/api/schema/",
                         headers={"Accept": "application/vnd.oai.openapi+json"}, timeout=30)
    assert document.status_code == 200
    (tmp_path / "schema.json").write_text(json.dumps(document.json()))
    (tmp_path / "config.json").write_text(json.dumps({
        "project_name_override": "buffet-client", "package_name_override": PACKAGE,
        "post_hooks": []}))
    out = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--meta", "none",
         "--path", str(tmp_path / "schema.json"), "--config", str(tmp_path / "config.json"),
         "--output-path", str(tmp_path / "lib" / PACKAGE)],
        capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    # every operation and component understood: nothing skipped with a warning
    assert "Warning" not in out.stdout + out.stderr, out.stdout + out.stderr
    sys.path.insert(0, str(tmp_path / "lib"))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path / "lib"))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


@pytest.fixture
def world(fabric, staff):
    """A stampsim stamp with a worker, and a public plan on it with a Debian template."""
    world = fabric()
    template = staff.post("/api/v1/admin/templates/", {
        "name": "debian-12", "os": "Debian 12", "cloud": world["cloud"]["id"], "image": "deb",
        "min_vcpus": 1, "min_memory_mb": 512, "min_disk_gb": 10}, format="json").json()
    response = staff.patch(f"/api/v1/admin/plans/{world['plan']['id']}/",
                           {"templates": [template["id"]]}, format="json")
    assert response.status_code == 200, response.content
    return world


@pytest.fixture
def connect(generated, live_server):
    """``connect(token=None)``: a generated client of the live server, closed at the end (an
    open keep-alive connection would hold a server thread and its database session)."""
    clients = []

    def make(token: str | None = None):
        options = {"base_url": live_server.url, "raise_on_unexpected_status": True}
        client = (generated.Client(**options) if token is None else
                  generated.AuthenticatedClient(token=token, prefix="Token", **options))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def op(module: str, name: str):
    """A generated operation's module: ``op("vms", "vms_create").sync(...)``."""
    return importlib.import_module(f"{PACKAGE}.api.{module}.{name}")


def test_a_generated_client_runs_a_vm_and_reads_every_error(generated, connect, world):
    models = importlib.import_module(f"{PACKAGE}.models")
    anonymous = connect()

    # sign up and get a token (the scheme's word is Token)
    email, password = f"{unique('gen')}@example.com", "a generated password"
    signup = op("auth", "auth_signup_create").sync(
        client=anonymous, body=models.SignUpRequest(email=email, password=password,
                                                    tenant_name=unique("Generated ")))
    assert isinstance(signup, models.SignUpResult) and signup.user.email == email
    token = op("auth", "auth_token_create").sync(
        client=anonymous, body=models.TokenRequest(email=email, password=password))
    client = connect(token.token)  # sends Authorization: Token <key>

    def settled(job_id) -> object:
        def ended():
            job = op("jobs", "jobs_retrieve").sync(job_id, client=client)
            return job if job.state not in (models.JobState.QUEUED, models.JobState.RUNNING,
                                            models.JobState.COMPENSATING) else None
        try:
            job = wait_for(ended, timeout=JOB_TIMEOUT, message=f"job {job_id} did not end")
        except AssertionError:
            print(world["worker"].log_tail())
            raise
        assert job.state == models.JobState.SUCCEEDED, job.error
        assert [step.state for step in job.steps] == [models.StepState.SUCCEEDED] * len(
            job.steps)
        return job

    def accepted(response):
        assert response.status_code == 202, response.content
        assert response.headers["Location"] == f"/api/v1/jobs/{response.parsed.job}/"
        return settled(response.parsed.job)

    # subscribe to the public plan and wait for its commission
    plans = op("plans", "plans_list").sync(client=client)
    plan = next(p for p in plans.results if str(p.id) == world["plan"]["id"])
    subscription = op("subscriptions", "subscriptions_create").sync(
        client=client, body=models.SubscriptionRequest(plan=plan.id, name="generated"),
        idempotency_key=f"subscribe-{uuid.uuid4()}")
    assert isinstance(subscription, models.Subscription)
    commission = op("jobs", "jobs_list").sync(client=client, subscription=subscription.id)
    assert [j.runbook for j in commission.results] == ["subscription.commission"]
    settled(commission.results[0].id)
    subscription = op("subscriptions", "subscriptions_retrieve").sync(subscription.id,
                                                                     client=client)
    assert subscription.state == models.SubscriptionState.ACTIVE

    # a VM from the plan's template
    templates = op("templates", "templates_list").sync(client=client,
                                                       subscription=subscription.id)
    assert [t.name for t in templates.results] == ["debian-12"]
    response = op("vms", "vms_create").sync_detailed(client=client, body=models.VmRequest(
        subscription=subscription.id, name="web-1", template=templates.results[0].id,
        vcpus=1, memory_mb=512, disk_gb=10))
    assert response.parsed.state == models.VmState.PROVISIONING
    accepted(response)
    vm = op("vms", "vms_retrieve").sync(response.parsed.id, client=client)
    assert isinstance(vm, models.Vm) and vm.state == models.VmState.RUNNING and vm.ip_address

    # stop, start, a checkpoint, a resize
    accepted(op("vms", "vms_stop_create").sync_detailed(vm.id, client=client))
    accepted(op("vms", "vms_start_create").sync_detailed(vm.id, client=client))
    response = op("vms", "vms_snapshots_create").sync_detailed(
        vm.id, client=client, body=models.SnapshotRequest(name="before"))
    assert isinstance(response.parsed, models.SnapshotAccepted)
    accepted(response)
    checkpoints = op("vms", "vms_snapshots_list").sync(vm.id, client=client)
    assert [(c.name, c.state) for c in checkpoints.results] == [
        ("before", models.SnapshotState.READY)]
    accepted(op("vms", "vms_resize_create").sync_detailed(
        vm.id, client=client, body=models.ResizeRequest(vcpus=2, memory_mb=1024)))
    quota = op("subscriptions", "subscriptions_quota_retrieve").sync(subscription.id,
                                                                    client=client)
    assert (quota.vcpus.used, quota.vcpus.limit, quota.snapshots.used) == (2, 8, 1)

    # errors are ProblemDetails: 400 naming the field ...
    bad = op("vms", "vms_create").sync_detailed(client=client, body=models.VmRequest(
        subscription=uuid.uuid4(), name="web-2", template=templates.results[0].id,
        vcpus=1, memory_mb=512, disk_gb=10))
    assert bad.status_code == 400 and isinstance(bad.parsed, models.ProblemDetails)
    assert bad.parsed.type_.endswith("/invalid")
    assert bad.parsed.errors["subscription"] == ["Not a subscription of yours."]
    # ... 404 for what is not there (or another tenant's) ...
    missing = op("vms", "vms_retrieve").sync_detailed(uuid.uuid4(), client=client)
    assert missing.status_code == 404 and missing.parsed.type_.endswith("/not-found")
    # ... 409 quota-exceeded with each dimension over its limit ...
    over = op("vms", "vms_resize_create").sync_detailed(
        vm.id, client=client, body=models.ResizeRequest(vcpus=9, memory_mb=1024))
    assert over.status_code == 409 and over.parsed.type_.endswith("/quota-exceeded")
    excess = over.parsed.errors["vcpus"]
    assert isinstance(excess, models.QuotaExcess)
    assert (excess.requested, excess.used, excess.limit) == (7, 2, 8)
    assert "Retry-After" not in over.headers
    # ... and 401 for a wrong token
    refused = op("vms", "vms_list").sync_detailed(client=connect("wrong"))
    assert refused.status_code == 401 and refused.parsed.status == 401

    # delete: the quota comes back when the job has ended
    response = op("vms", "vms_destroy").sync_detailed(vm.id, client=client)
    assert response.parsed.state == models.VmState.DELETING
    accepted(response)
    quota = op("subscriptions", "subscriptions_quota_retrieve").sync(subscription.id,
                                                                    client=client)
    assert (quota.vcpus.used, quota.vms.used) == (0, 0)
    assert op("vms", "vms_retrieve").sync_detailed(vm.id, client=client).status_code == 404
