"""``manage.py bench dr``: how long protecting a subscription of N VMs takes, and how
long failing it over takes, against stampsim at zero and at a realistic latency.

Each latency gets a stack of its own (two stampsim processes, a worker on both stamps'
queues, gunicorn) and a fresh tenant; the VMs are created through the API and the
add-on attached through the API, as a tenant would. Times are the jobs' own (from
the request to the job's end), read from the job API.
"""

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

from portal.bench.stack import Stack, StackFailed
from portal.bench.world import _created, _staff_token, _tenant_token, client
from provisioning.models import JOB_TERMINAL_STATES
from stampsim.testing import StampProcess

__all__ = ["render", "run"]

JOB_TIMEOUT = 1800.0


def _wait(http, job_id: str, stack: Stack, *, path="/api/v1/jobs/") -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        stack.check()
        job = _created(http.get(f"{path}{job_id}/"))
        if job["state"] in JOB_TERMINAL_STATES:
            if job["state"] != "succeeded":
                raise StackFailed(f"{job['runbook']} ended {job['state']}: {job['error']}")
            return job
        time.sleep(0.25)  # polling interval, bounded by the deadline
    raise StackFailed(f"job {job_id} did not end within {JOB_TIMEOUT:.0f} s")


def _seconds(job: dict) -> float:
    start, end = (datetime.fromisoformat(job[k].replace("Z", "+00:00"))
                  for k in ("created_at", "finished_at"))
    return (end - start).total_seconds()


def _one(run_dir: Path, vms: int, latency_ms: int, say) -> dict:
    run = f"dr{latency_ms}-{secrets.token_hex(3)}"
    args = ("--latency-ms", str(latency_ms), "--no-fsync", "--max-vms", str(vms * 3 + 10),
            "--vcpus", str(vms * 4), "--memory-mb", str(vms * 4096),
            "--storage-gb", str(vms * 100))
    recovery = StampProcess(f"{run}-b", run_dir / "stamp-b", args=args)
    with Stack(run_dir, worker_concurrency=2) as stack:
        try:
            stack.start_broker()
            primary = stack.start_stampsim(f"{run}-a", *args)
            recovery.start(timeout=60)
            stack.start_worker([f"stamp.{primary.name}", f"stamp.{recovery.name}"])
            stack.start_web()
            staff_token, tenant_token = _staff_token(run), _tenant_token(run)
            with client(stack.url, staff_token) as staff, \
                    client(stack.url, tenant_token) as tenant:
                world = _catalog(staff, run, primary, recovery, vms)
                say(f"latency {latency_ms} ms: commissioning and creating {vms} VMs…")
                sid = _created(tenant.post("/api/v1/subscriptions/", json={
                    "plan": world["plan"], "name": "bench"}))["id"]
                commission = _created(tenant.get("/api/v1/jobs/", params={
                    "subscription": sid}))["results"][0]
                _wait(tenant, commission["id"], stack)
                network = _created(tenant.get("/api/v1/networks/"))["results"][0]["id"]
                _create_vms(stack, tenant_token, sid, world["template"], network, vms)
                say(f"latency {latency_ms} ms: protecting…")
                _created(tenant.post(f"/api/v1/subscriptions/{sid}/addons/",
                                     json={"addon": world["addon"]}))
                protect = _created(tenant.get("/api/v1/jobs/", params={
                    "runbook": "dr.protect"}))["results"][0]
                protect = _wait(tenant, protect["id"], stack)
                say(f"latency {latency_ms} ms: planned failover…")
                failover = _created(staff.post(f"/api/v1/admin/subscriptions/{sid}/dr/failover/",
                                               json={"mode": "planned"}))
                failover = _wait(staff, failover["job"], stack, path="/api/v1/admin/jobs/")
                status = _created(tenant.get(f"/api/v1/subscriptions/{sid}/dr/"))
        finally:
            recovery.stop()
    if status["active_site"] != "recovery" or len(status["protected"]) != vms:
        raise StackFailed(f"unexpected DR state after failover: {status['state']}")
    return {"latency_ms": latency_ms, "vms": vms, "protect_seconds": _seconds(protect),
            "failover_seconds": _seconds(failover)}


def _catalog(staff, run, primary, recovery, vms) -> dict:
    def post(path, body):
        return _created(staff.post(f"/api/v1/admin/{path}/", json=body))

    room = {"vcpus": vms * 2, "memory_mb": vms * 1024, "storage_gb": vms * 20, "vms": vms}
    stamps = [post("stamps", {"name": sim.name, "region": sim.name, "driver": "simulated",
                              "endpoint": sim.url}) for sim in (primary, recovery)]
    clouds = [post("clouds", {"name": f"{run}-{i}", "stamp": stamp["id"], "capacity": room,
                              "default_network_cidr": "10.64.0.0/16",
                              "external_pool_cidr": f"192.0.{i + 2}.0/24"})
              for i, stamp in enumerate(stamps)]
    template = post("templates", {"name": "bench-linux", "os": "Linux", "image": "img",
                                  "cloud": clouds[0]["id"], "min_memory_mb": 512,
                                  "min_disk_gb": 10})
    addon = post("addons", {"name": f"DR {run}", "kind": "dr",
                            "recovery_cloud": clouds[1]["id"]})
    post("network-mappings", {"addon": addon["id"], "primary_network": "external",
                              "recovery_network": "external"})
    plan = post("plans", {"name": f"Bench {run}", "state": "public", "cloud": clouds[0]["id"],
                          "templates": [template["id"]], "addons": [addon["id"]],
                          "quotas": {**room, "networks": 1, "snapshots": 0}})
    return {"plan": plan["id"], "template": template["id"], "addon": addon["id"]}


def _create_vms(stack, token, sid, template, network, count, clients=8) -> None:
    def create(index):
        with client(stack.url, token) as http:
            return _created(http.post("/api/v1/vms/", json={
                "subscription": sid, "name": f"vm-{index:04d}", "template": template,
                "network": network, "vcpus": 1, "memory_mb": 512, "disk_gb": 10}))["job"]

    with ThreadPoolExecutor(max_workers=clients) as pool:
        jobs = list(pool.map(create, range(count)))
    with client(stack.url, token) as http:
        for job in jobs:
            _wait(http, job, stack)


def run(*, vms: int, latencies: list[int], say=print) -> list[dict]:
    """Protect and fail over a subscription of ``vms`` VMs at each stampsim latency."""
    name = f"bench-dr-{secrets.token_hex(3)}"
    run_dir = Path(settings.VAR_DIR) / "bench" / name
    say(f"Run {name}: migrating; logs in {run_dir}")
    call_command("migrate", interactive=False, verbosity=0)
    return [_one(run_dir / f"latency-{latency}", vms, latency, say) for latency in latencies]


def render(rows: list[dict]) -> str:
    lines = ["", f"{'stampsim latency':>17} {'VMs':>5} {'protect (s)':>12} "
                 f"{'per VM (ms)':>12} {'failover (s)':>13} {'per VM (ms)':>12}"]
    for row in rows:
        lines.append(
            f"{row['latency_ms']:>14} ms {row['vms']:>5} {row['protect_seconds']:>12.1f} "
            f"{1000 * row['protect_seconds'] / row['vms']:>12.0f} "
            f"{row['failover_seconds']:>13.1f} "
            f"{1000 * row['failover_seconds'] / row['vms']:>12.0f}")
    return "\n".join(lines)
