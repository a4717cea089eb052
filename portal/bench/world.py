"""What a provisioning benchmark needs, built the way a provider and a tenant would: a
staff user and a tenant (by the services, so sign-up throttling does not apply), then
a stamp on the run's stampsim, a cloud, a template, a public plan and a subscription
through the HTTP API, and the subscription's commission job run to its end."""

import secrets
import time
from dataclasses import dataclass

import httpx

from portal.bench.stack import Stack, StackFailed
from provisioning.models import JOB_TERMINAL_STATES
from tenants import services as tenant_services
from tenants.models import User

__all__ = ["ROOM", "World", "build_world", "client"]

# VMs the run may hold at once. The plan, the cloud and the stamp all have room for
# this many, and the default network (a /16) has addresses for them.
ROOM = 50_000
VM_SIZE = {"vcpus": 1, "memory_mb": 512, "disk_gb": 10}
COMMISSION_TIMEOUT = 120.0


@dataclass(frozen=True)
class World:
    url: str
    tenant_token: str
    subscription: str
    template: str
    network: str

    def vm(self, name: str) -> dict:
        """The body of a VM create."""
        return {"subscription": self.subscription, "name": name, "template": self.template,
                "network": self.network, **VM_SIZE}


def client(url: str, token: str, *, timeout: float = 60.0) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=timeout,
                        headers={"Authorization": f"Token {token}"})


def _created(response: httpx.Response) -> dict:
    if response.status_code not in (200, 201, 202):
        raise StackFailed(f"{response.request.method} {response.request.url} answered "
                          f"{response.status_code}: {response.text[:500]}")
    return response.json()


def _staff_token(run: str) -> str:
    user = User.objects.create_superuser(f"{run}-admin@bench.example",
                                         secrets.token_urlsafe(16))
    return tenant_services.issue_token(user, name="bench").key


def _tenant_token(run: str) -> str:
    membership = tenant_services.sign_up(email=f"{run}-owner@bench.example",
                                         password=secrets.token_urlsafe(16),
                                         tenant_name=f"Bench {run}")
    return tenant_services.issue_token(membership.user, name="bench").key


def build_world(stack: Stack, run: str, *, snapshots: int = 0) -> World:
    """The catalog and a commissioned subscription on the stack's stamp; the plan allows
    ``snapshots`` checkpoints at once."""
    staff_token, tenant_token = _staff_token(run), _tenant_token(run)
    with client(stack.url, staff_token) as staff:
        def post(path: str, body: dict) -> dict:
            return _created(staff.post(f"/api/v1/admin/{path}/", json=body))

        stamp = post("stamps", {"name": stack.stampsim.name, "region": "bench",
                                "driver": "simulated", "endpoint": stack.stampsim.url})
        cloud = post("clouds", {
            "name": run, "stamp": stamp["id"],
            "capacity": {"vcpus": ROOM * VM_SIZE["vcpus"],
                         "memory_mb": ROOM * VM_SIZE["memory_mb"],
                         "storage_gb": ROOM * VM_SIZE["disk_gb"], "vms": ROOM},
            "default_network_cidr": "10.64.0.0/16", "external_pool_cidr": "192.0.2.0/24"})
        template = post("templates", {
            "name": "bench-linux", "os": "Linux", "cloud": cloud["id"], "image": "img-bench",
            "min_vcpus": 1, "min_memory_mb": VM_SIZE["memory_mb"],
            "min_disk_gb": VM_SIZE["disk_gb"]})
        plan = post("plans", {
            "name": f"Bench {run}", "state": "public", "cloud": cloud["id"],
            "templates": [template["id"]],
            "quotas": {"vcpus": ROOM * VM_SIZE["vcpus"],
                       "memory_mb": ROOM * VM_SIZE["memory_mb"],
                       "storage_gb": ROOM * VM_SIZE["disk_gb"], "vms": ROOM, "networks": 1,
                       "snapshots": snapshots}})
    with client(stack.url, tenant_token) as tenant:
        subscription = _created(tenant.post("/api/v1/subscriptions/",
                                            json={"plan": plan["id"], "name": "bench"}))
        jobs = _created(tenant.get("/api/v1/jobs/",
                                   params={"subscription": subscription["id"]}))["results"]
        _wait_job(stack, tenant, jobs[0]["id"])
        networks = _created(tenant.get("/api/v1/networks/",
                                       params={"subscription": subscription["id"]}))
    return World(url=stack.url, tenant_token=tenant_token, subscription=subscription["id"],
                 template=template["id"], network=networks["results"][0]["id"])


def _wait_job(stack: Stack, http: httpx.Client, job_id: str) -> None:
    deadline = time.monotonic() + COMMISSION_TIMEOUT
    while time.monotonic() < deadline:
        stack.check()
        job = _created(http.get(f"/api/v1/jobs/{job_id}/"))
        if job["state"] in JOB_TERMINAL_STATES:
            if job["state"] != "succeeded":
                raise StackFailed(f"the commission job ended {job['state']}: {job['error']}")
            return
        time.sleep(0.2)  # polling interval, bounded by the deadline
    raise StackFailed(f"the commission job did not end within {COMMISSION_TIMEOUT:.0f} s")
