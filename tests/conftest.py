"""Fixtures of the integration tests: stampsim processes and Celery workers."""

import pytest

from conftest import unique
from stampsim.testing import StampProcess
from tests.processes import WorkerProcess


@pytest.fixture
def stampsims(tmp_path):
    """``stampsims(name)`` starts a stampsim process; all are stopped at the end."""
    started: list[StampProcess] = []

    def start(name: str = "stamp", *args: str) -> StampProcess:
        process = StampProcess(unique(f"{name}-"), tmp_path / unique("sim"), args=list(args))
        started.append(process.start())
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def workers(transactional_db, tmp_path):
    """``workers(queues)`` starts a real Celery worker on the test database."""
    started: list[WorkerProcess] = []

    def start(queues: list[str], *, concurrency: int = 1, args: tuple[str, ...] = (),
              **env: str) -> WorkerProcess:
        worker = WorkerProcess(queues, tmp_path, concurrency=concurrency, args=args, **env)
        started.append(worker.start())
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def fabric(staff, stampsims, workers, settings):
    """A stampsim stamp registered through the API, its cloud and a public plan, and a
    worker consuming the stamp's queue."""
    settings.BUFFET_JOB_LEASE_SECONDS = 3

    def build(*stampsim_args: str, worker_env: dict | None = None, endpoint: str | None = None,
              concurrency: int = 1):
        sim = stampsims("stamp", *stampsim_args)
        post = lambda path, body: staff.post(f"/api/v1/admin/{path}/", body, format="json")  # noqa: E731
        stamp = post("stamps", {"name": sim.name, "region": "west", "driver": "simulated",
                                "endpoint": endpoint or sim.url}).json()
        cloud = post("clouds", {"name": unique("cloud-"), "stamp": stamp["id"],
                                "capacity": {"vcpus": 64, "memory_mb": 131072,
                                             "storage_gb": 2000, "vms": 50},
                                "default_network_cidr": "10.1.0.0/24",
                                "external_pool_cidr": "192.0.2.0/28"}).json()
        plan = post("plans", {"name": unique("Plan "), "state": "public", "cloud": cloud["id"],
                              "quotas": {"vcpus": 8, "memory_mb": 16384, "storage_gb": 200,
                                         "vms": 4, "networks": 3, "snapshots": 4}}).json()
        worker = workers([f"stamp.{sim.name}"], concurrency=concurrency, **(worker_env or {}))
        return {"sim": sim, "stamp": stamp, "cloud": cloud, "plan": plan, "worker": worker}

    return build
