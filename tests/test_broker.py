"""The embedded broker under faults: a worker whose pool processes are SIGKILLed again and
again, as an out-of-memory killer does, ends every job and goes on consuming.

The test starts an embedded broker of its own and points this process and the worker at
it, so it runs the same in embedded mode and on the PostgreSQL and Redis of CI.
"""

import os
import signal
import threading
import time

import pytest

from conftest import unique
from portal.broker import EmbeddedBroker, answers
from provisioning import engine
from provisioning.models import JOB_TERMINAL_STATES, Job, JobState
from tests.processes import publishing_to, wait_for

pytestmark = pytest.mark.worker

ROUNDS = 4  # rounds of kills while jobs are asked for
JOBS_PER_ROUND = 4
JOBS = ROUNDS * JOBS_PER_ROUND
KILL_EVERY = 3.0  # seconds between two rounds of SIGKILLs to every pool process


@pytest.fixture
def embedded_broker(tmp_path):
    with EmbeddedBroker(tmp_path / "broker") as broker, publishing_to(broker.url):
        yield broker


class PoolKiller:
    """SIGKILLs every pool process of ``worker`` each ``KILL_EVERY`` seconds, until stopped."""

    def __init__(self, worker):
        self.worker = worker
        self.kills = 0
        self.rounds = 0  # rounds that killed at least one process
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.halt.wait(KILL_EVERY):
            killed = 0
            for pid in self.worker.pool_processes():
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            self.kills += killed
            self.rounds += bool(killed)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.halt.set()
        self.thread.join(timeout=10)


def catalog_for(staff, cloud, vms: int) -> dict:
    """A template on ``cloud`` and a public plan with room for ``vms`` small VMs."""
    post = lambda path, body: staff.post(f"/api/v1/admin/{path}/", body, format="json")  # noqa: E731
    template = post("templates", {"name": "debian", "os": "Debian", "image": "deb",
                                  "cloud": cloud["id"], "min_vcpus": 1, "min_memory_mb": 512,
                                  "min_disk_gb": 10}).json()
    plan = post("plans", {"name": unique("Plan "), "state": "public", "cloud": cloud["id"],
                          "templates": [template["id"]],
                          "quotas": {"vcpus": vms, "memory_mb": vms * 512,
                                     "storage_gb": vms * 10, "vms": vms, "networks": 1,
                                     "snapshots": 0}}).json()
    return {"template": template, "plan": plan}


def test_a_worker_whose_pool_processes_keep_dying_ends_every_job_and_still_consumes(
        embedded_broker, fabric, signup, staff):
    # given a worker with two pool processes on the embedded broker, slow fabric calls (so
    # that kills land inside steps) and a commissioned subscription with room for the VMs
    world = fabric("--latency-ms", "150", concurrency=2,
                   worker_env={"CELERY_BROKER_URL": embedded_broker.url})
    worker = world["worker"]
    catalog = catalog_for(staff, world["cloud"], JOBS + 1)
    owner = signup()
    subscription = owner.post("/api/v1/subscriptions/", {"plan": catalog["plan"]["id"],
                                                         "name": "prod"}, format="json").json()
    commission = owner.get("/api/v1/jobs/", {"subscription": subscription["id"]}).json()
    commission_id = commission["results"][0]["id"]
    wait_for(lambda: Job.objects.get(pk=commission_id).state == JobState.SUCCEEDED,
             timeout=60, message=f"the commission did not succeed:\n{worker.log_tail()}")

    def create(name: str) -> str:
        response = owner.post("/api/v1/vms/", {
            "subscription": subscription["id"], "name": name,
            "template": catalog["template"]["id"], "vcpus": 1, "memory_mb": 512,
            "disk_gb": 10}, format="json")
        assert response.status_code == 202, response.content
        return response.json()["job"]

    # when VMs are asked for, a few after each round of kills of every pool process (every
    # 3 s): the kills find processes both busy and idle, waiting for their next job
    with PoolKiller(worker) as killer:
        jobs = []
        for round_ in range(1, ROUNDS + 1):
            jobs += [create(f"vm-{round_}-{i}") for i in range(JOBS_PER_ROUND)]
            wait_for(lambda round_=round_: killer.rounds >= round_, timeout=5 * KILL_EVERY,
                     message=f"no pool process to kill in round {round_}")

        def all_ended():
            engine.sweep()  # what beat does: hand the job of a dead process to a live one
            states = list(Job.objects.filter(pk__in=jobs).values_list("state", flat=True))
            return all(state in JOB_TERMINAL_STATES for state in states)

        wait_for(all_ended, timeout=180, interval=0.5,
                 message=f"jobs still unfinished after {killer.kills} kills: "
                         f"{list(Job.objects.filter(pk__in=jobs).values_list('state'))}\n"
                         f"{worker.log_tail()}")
    # then every job ended, though pool processes died under them
    assert killer.rounds >= ROUNDS and killer.kills >= ROUNDS
    assert Job.objects.filter(pk__in=jobs).exclude(state__in=JOB_TERMINAL_STATES).count() == 0
    # and the same worker still consumes: a job asked for afterwards runs at once
    assert worker.process.poll() is None, worker.log_tail()
    started = time.monotonic()
    after = create("vm-after")
    wait_for(lambda: Job.objects.get(pk=after).state == JobState.SUCCEEDED, timeout=30,
             message=f"the worker no longer consumes:\n{worker.log_tail()}")
    assert time.monotonic() - started < 30


def test_the_embedded_broker_keeps_queued_messages_across_a_restart(tmp_path):
    # given an embedded broker holding a message nobody has taken
    from kombu import Connection

    data = tmp_path / "broker"
    with EmbeddedBroker(data) as broker, Connection(broker.url) as conn:
        conn.SimpleQueue("jobs").put({"job": "kept"})
    assert not answers(broker.url)
    # when it is started again on the same directory
    with EmbeddedBroker(data) as broker, Connection(broker.url) as conn:
        queue = conn.SimpleQueue("jobs")
        # then the message is still there
        assert queue.get(timeout=5).payload == {"job": "kept"}
        queue.close()
