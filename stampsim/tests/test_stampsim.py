"""stampsim over real HTTP: a real process on 127.0.0.1, started and killed per test."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stampsim import CRASH_EXIT_CODE, make_server
from stampsim.testing import StampProcess

VM = {"name": "web", "vcpus": 2, "memory_mb": 2048, "disk_gb": 20, "image": "ubuntu-24.04"}


def new_key() -> str:
    return uuid.uuid4().hex


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, within a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout}s")


class Client:
    """A small stampsim API client for the tests."""

    def __init__(self, url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=5.0)

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, key: str | None = None
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return self.http.request(method, path, json=body, headers=headers)

    def start(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, key: str | None = None
    ) -> dict[str, Any]:
        """Start an operation; its first view."""
        answer = self.call(method, path, body, key=key or new_key())
        assert answer.status_code == 202, answer.text
        return answer.json()["operation"]

    def finished(self, operation: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        def poll() -> dict[str, Any] | None:
            op = self.call("GET", f"/v1/operations/{operation['id']}").json()["operation"]
            return op if op["state"] != "running" else None

        return operation if operation["state"] != "running" else wait_for(poll, timeout, "end")

    def ok(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, key: str | None = None
    ) -> Any:
        """Run an operation to success; its result."""
        op = self.finished(self.start(method, path, body, key=key))
        assert op["state"] == "succeeded", op
        return op["result"]

    def get(self, path: str) -> Any:
        answer = self.call("GET", path)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def stamps(tmp_path: Path) -> Iterator[Callable[..., StampProcess]]:
    """``stamps(name, *flags)`` starts a stampsim process; all are killed at teardown."""
    started: list[StampProcess] = []

    def start(name: str = "stamp-a", *flags: str, token: str | None = None) -> StampProcess:
        stamp = StampProcess(name, tmp_path / name, args=flags, token=token)
        started.append(stamp)
        return stamp.start()

    yield start
    for stamp in started:
        stamp.kill()


@pytest.fixture
def stamp(stamps: Callable[..., StampProcess]) -> StampProcess:
    return stamps("stamp-a")


@pytest.fixture
def api(stamp: StampProcess) -> Client:
    return Client(stamp.url)


def make_container(api: Client, name: str = "tenant-1") -> str:
    return api.ok("POST", "/v1/containers", {"name": name})["id"]


def test_health_reports_name_capacity_and_allocation(stamps: Callable[..., StampProcess]) -> None:
    # given a stamp with 8 vCPUs
    api = Client(stamps("stamp-h", "--vcpus", "8").url)
    # when a VM takes 2 of them
    api.ok("POST", f"/v1/containers/{make_container(api)}/vms", VM)
    # then health shows both totals and use
    health = api.get("/v1/health")
    assert health["name"] == "stamp-h"
    assert health["status"] == "ok"
    assert health["capacity"]["vcpus"] == 8
    assert health["allocated"] == {"vcpus": 2, "memory_mb": 2048, "storage_gb": 20, "vms": 1}


def test_capacity_beyond_the_stamp_is_refused(stamps: Callable[..., StampProcess]) -> None:
    # given a stamp with 4 vCPUs and room for 2 VMs
    api = Client(stamps("small", "--vcpus", "4", "--max-vms", "2").url)
    container = make_container(api)
    api.ok("POST", f"/v1/containers/{container}/vms", {**VM, "vcpus": 3})
    # when more vCPUs are asked for than are left
    answer = api.call("POST", f"/v1/containers/{container}/vms", {**VM, "vcpus": 2}, key=new_key())
    # then the stamp refuses with 409 capacity and allocates nothing
    assert answer.status_code == 409
    assert answer.json()["error"] == "capacity"
    assert "vcpus" in answer.json()["detail"]
    assert api.get("/v1/health")["allocated"]["vcpus"] == 3
    # and the VM count is a limit too
    api.ok("POST", f"/v1/containers/{container}/vms", {**VM, "vcpus": 1})
    third = api.call("POST", f"/v1/containers/{container}/vms", {**VM, "vcpus": 1}, key=new_key())
    assert (third.status_code, third.json()["error"]) == (409, "capacity")


def test_same_idempotency_key_creates_one_vm(api: Client) -> None:
    # given a container
    container = make_container(api)
    key = new_key()
    # when the same create is sent twice with one key
    first = api.finished(api.start("POST", f"/v1/containers/{container}/vms", VM, key=key))
    second = api.start("POST", f"/v1/containers/{container}/vms", VM, key=key)
    # then both answers are the same operation and there is one VM
    assert second["id"] == first["id"]
    assert second["result"]["id"] == first["result"]["id"]
    assert len(api.get("/v1/inventory")["vms"]) == 1
    # and the key cannot be reused for another call
    other = api.call("POST", f"/v1/containers/{container}/vms", {**VM, "name": "db"}, key=key)
    assert (other.status_code, other.json()["error"]) == (409, "idempotency-mismatch")


def test_a_mutating_call_needs_a_key(api: Client) -> None:
    answer = api.call("POST", "/v1/containers", {"name": "x"})
    assert (answer.status_code, answer.json()["error"]) == (400, "key-required")
    assert api.get("/v1/inventory")["containers"] == []


def test_operations_run_asynchronously_with_latency(stamps: Callable[..., StampProcess]) -> None:
    # given a stamp that takes 3 s per operation (long enough that a loaded machine still
    # asks for the inventory before it has run)
    api = Client(stamps("slow", "--latency-ms", "3000").url)
    # when a container is asked for
    op = api.start("POST", "/v1/containers", {"name": "t"})
    # then the first answer is an operation still running, with nothing created yet
    assert op["state"] == "running"
    assert op["kind"] == "container.create"
    assert api.get("/v1/inventory")["containers"] == []
    # and polling sees it succeed with the container as its result
    done = api.finished(op)
    assert done["state"] == "succeeded"
    assert api.get(f"/v1/containers/{done['result']['id']}")["container"]["name"] == "t"


def test_restart_on_the_same_data_keeps_state_and_keys(stamp: StampProcess, api: Client) -> None:
    # given a container, a network and a VM, and the key that made the VM
    container = make_container(api)
    net = api.ok(
        "POST", f"/v1/containers/{container}/networks", {"name": "n", "cidr": "10.1.0.0/24"}
    )
    key = new_key()
    vm = api.ok("POST", f"/v1/containers/{container}/vms", {**VM, "network_id": net["id"]}, key=key)
    before = api.get("/v1/inventory")
    # when the process is killed and started again on the same directory
    stamp.restart()
    api = Client(stamp.url)
    # then everything is still there, and the key still answers with the same VM
    assert api.get("/v1/inventory") == before
    again = api.start(
        "POST", f"/v1/containers/{container}/vms", {**VM, "network_id": net["id"]}, key=key
    )
    assert again["result"]["id"] == vm["id"]
    assert len(api.get("/v1/inventory")["vms"]) == 1


def test_operation_running_at_a_crash_is_failed_after_restart(
    stamps: Callable[..., StampProcess],
) -> None:
    # given a slow stamp set to crash after one more operation
    stamp = stamps("crashy", "--latency-ms", "5000")
    api = Client(stamp.url)
    api.http.post("/v1/admin/faults", json={"crash_after": 1})
    # when an operation is accepted
    op = api.start("POST", "/v1/containers", {"name": "lost"})
    assert op["state"] == "running"
    # then the process exits hard right after answering
    assert stamp.wait_exit(timeout=10) == CRASH_EXIT_CODE
    # and after a restart the operation has ended, failed as interrupted, with nothing made
    stamp.start()
    api = Client(stamp.url)
    after = api.get(f"/v1/operations/{op['id']}")["operation"]
    assert after["state"] == "failed"
    assert after["error"]["code"] == "interrupted"
    assert api.get("/v1/inventory")["containers"] == []


def test_crash_after_ends_the_process_after_n_operations(
    stamps: Callable[..., StampProcess],
) -> None:
    # given a stamp started with --crash-after 2
    stamp = stamps("fragile", "--crash-after", "2")
    api = Client(stamp.url)
    # when two operations are served
    api.ok("POST", "/v1/containers", {"name": "one"})
    assert stamp.alive
    api.ok("POST", "/v1/containers", {"name": "two"})
    # then the process is gone, and both operations were kept
    assert stamp.wait_exit(timeout=10) == CRASH_EXIT_CODE
    stamp.start()
    names = {c["name"] for c in Client(stamp.url).get("/v1/inventory")["containers"]}
    assert names == {"one", "two"}


def test_injected_operation_failure_leaves_nothing_behind(api: Client) -> None:
    # given a container and a fault that fails the next VM creation
    container = make_container(api)
    faults = api.http.post("/v1/admin/faults", json={"fail_op_next": {"vm.create": 1}})
    assert faults.json()["fail_op_next"] == {"vm.create": 1}
    # when a VM is created
    op = api.finished(api.start("POST", f"/v1/containers/{container}/vms", VM))
    # then the operation failed and no VM or allocation is left
    assert op["state"] == "failed"
    assert op["error"]["code"] == "injected-failure"
    assert api.get("/v1/inventory")["vms"] == []
    assert api.get("/v1/health")["allocated"]["vcpus"] == 0
    # and the fault was used up
    assert api.get("/v1/admin/faults")["fail_op_next"] == {}


def test_injected_call_failure_answers_503_and_leaves_the_key_free(api: Client) -> None:
    # given a fault on the next network creation call
    container = make_container(api)
    api.http.post("/v1/admin/faults", json={"fail_next": {"network.create": 1}})
    key = new_key()
    body = {"name": "n", "cidr": "10.2.0.0/24"}
    # when the call is made, then retried with the same key
    first = api.call("POST", f"/v1/containers/{container}/networks", body, key=key)
    assert (first.status_code, first.json()["error"]) == (503, "injected-failure")
    assert api.get("/v1/inventory")["networks"] == []
    retried = api.ok("POST", f"/v1/containers/{container}/networks", body, key=key)
    # then the retry created exactly one network
    assert [n["id"] for n in api.get("/v1/inventory")["networks"]] == [retried["id"]]


def test_injected_call_failure_may_answer_500(api: Client) -> None:
    # given calls that fail with a 500, as a controller with a bug answers
    container = make_container(api)
    api.http.post("/v1/admin/faults", json={"fail_rate": {"*": 1.0}, "fail_status": 500})
    # when a network is asked for
    answer = api.call("POST", f"/v1/containers/{container}/networks",
                      {"name": "n", "cidr": "10.2.0.0/24"}, key=new_key())
    # then it is refused with a 500 and nothing is recorded
    assert (answer.status_code, answer.json()["error"]) == (500, "injected-failure")
    api.http.post("/v1/admin/faults", json={"fail_rate": {}})
    assert api.get("/v1/inventory")["networks"] == []


def test_a_hanging_stamp_answers_late_but_admin_calls_at_once(api: Client) -> None:
    # given a stamp that holds every call for 10 s
    api.http.post("/v1/admin/faults", json={"hang_ms": 10_000})
    # when a client with a shorter timeout calls it
    with pytest.raises(httpx.ReadTimeout):
        api.http.get("/v1/health", timeout=0.5)
    # then the admin calls still answer, and clearing the fault ends the hang (an answer
    # well within the hang, with room for a loaded machine)
    assert api.get("/v1/admin/faults")["hang_ms"] == 10_000
    api.http.post("/v1/admin/faults", json={"hang_ms": 0})
    assert api.http.get("/v1/health", timeout=5.0).status_code == 200


def test_operations_are_listed_with_the_key_that_asked_for_them(api: Client) -> None:
    # given a container asked for twice with one key, and once with another
    first, second = new_key(), new_key()
    api.ok("POST", "/v1/containers", {"name": "c1"}, key=first)
    api.ok("POST", "/v1/containers", {"name": "c1"}, key=first)
    api.ok("POST", "/v1/containers", {"name": "c2"}, key=second)
    # when the operations are listed
    operations = api.get("/v1/admin/operations")["operations"]
    # then there is one per key
    assert sorted((op["key"], op["kind"], op["state"]) for op in operations) == sorted(
        [(first, "container.create", "succeeded"), (second, "container.create", "succeeded")])


def test_bad_fault_status_is_refused(api: Client) -> None:
    answer = api.http.post("/v1/admin/faults", json={"fail_status": 404})
    assert answer.status_code == 400


def test_replication_carries_data_to_another_stamp_and_survives_losing_the_source(
    stamps: Callable[..., StampProcess],
) -> None:
    # given a VM on stamp A and a recovery container on stamp B
    stamp_a, stamp_b = stamps("site-a"), stamps("site-b")
    a, b = Client(stamp_a.url), Client(stamp_b.url)
    vm = a.ok("POST", f"/v1/containers/{make_container(a)}/vms", VM)
    recovery = make_container(b, "tenant-1-dr")
    # when replication is enabled
    target = {"target_endpoint": stamp_b.url, "target_container_id": recovery}
    rep = a.ok("POST", f"/v1/vms/{vm['id']}/replication", target)
    # then B holds a powered-off replica
    replica = b.get(f"/v1/vms/{rep['partner_vm_id']}")["vm"]
    assert (replica["kind"], replica["power_state"]) == ("replica", "stopped")
    assert b.call("POST", f"/v1/vms/{replica['id']}/start", key=new_key()).status_code == 409
    # when data is written on A and synced
    a.ok("POST", f"/v1/vms/{vm['id']}/write", {"amount": 3})
    synced = a.ok("POST", f"/v1/vms/{vm['id']}/replication/sync")
    assert synced["sequence"] == rep["sequence"] + 1
    assert synced["last_sync_at"] >= rep["last_sync_at"]
    assert b.get(f"/v1/vms/{replica['id']}")["vm"]["data_version"] == 3
    # and data written after the last sync is not there yet
    a.ok("POST", f"/v1/vms/{vm['id']}/write", {"amount": 1})
    # when A dies and B fails over
    stamp_a.kill()
    failed_over = b.ok("POST", f"/v1/vms/{replica['id']}/replication/failover")
    # then the replica is a normal VM with the last synced data, and it starts
    assert (failed_over["kind"], failed_over["data_version"]) == ("normal", 3)
    assert b.ok("POST", f"/v1/vms/{replica['id']}/start")["power_state"] == "running"
    # when A comes back and replication is reversed from B to A
    stamp_a.start()
    back = {"target_endpoint": stamp_a.url, "target_container_id": vm["container_id"]}
    reverse = b.ok("POST", f"/v1/vms/{replica['id']}/replication/reverse", back)
    # then A's old VM became the replica (adopted, not copied), carrying B's data
    assert reverse["partner_vm_id"] == vm["id"]
    old = a.get(f"/v1/vms/{vm['id']}")["vm"]
    assert (old["kind"], old["power_state"], old["data_version"]) == ("replica", "stopped", 3)
    assert len(a.get("/v1/inventory")["vms"]) == 1
    # and disabling on B removes the replica on A
    b.ok("DELETE", f"/v1/vms/{replica['id']}/replication")
    assert a.call("GET", f"/v1/vms/{vm['id']}").status_code == 404
    assert b.get(f"/v1/vms/{replica['id']}/replication")["replication"] is None


def test_failover_refuses_a_vm_that_is_not_a_replica(api: Client) -> None:
    vm = api.ok("POST", f"/v1/containers/{make_container(api)}/vms", VM)
    answer = api.call("POST", f"/v1/vms/{vm['id']}/replication/failover", key=new_key())
    assert (answer.status_code, answer.json()["error"]) == (409, "state")


def test_enable_replication_to_an_unreachable_stamp_fails_cleanly(api: Client) -> None:
    # given a VM and a target endpoint where nothing listens
    vm = api.ok("POST", f"/v1/containers/{make_container(api)}/vms", VM)
    dead = {"target_endpoint": "http://127.0.0.1:9", "target_container_id": "ctr-x"}
    # when replication is enabled
    op = api.finished(api.start("POST", f"/v1/vms/{vm['id']}/replication", dead))
    # then the operation failed as target-unreachable and nothing is recorded
    assert (op["state"], op["error"]["code"]) == ("failed", "target-unreachable")
    assert api.get(f"/v1/vms/{vm['id']}/replication")["replication"] is None


def test_overlapping_cidr_in_a_container_is_refused(api: Client) -> None:
    # given a /24 in a container
    container, other = make_container(api), make_container(api, "tenant-2")
    api.ok("POST", f"/v1/containers/{container}/networks", {"name": "a", "cidr": "10.0.0.0/24"})
    # when an overlapping /25 is asked for in the same container
    body = {"name": "b", "cidr": "10.0.0.128/25"}
    answer = api.call("POST", f"/v1/containers/{container}/networks", body, key=new_key())
    # then it is refused, while another container may use it
    assert (answer.status_code, answer.json()["error"]) == (409, "cidr-overlap")
    api.ok("POST", f"/v1/containers/{other}/networks", body)
    assert len(api.get("/v1/inventory")["networks"]) == 2


def test_external_address_in_use_is_refused(api: Client) -> None:
    # given an SNAT rule holding 203.0.113.10 in one container
    first, second = make_container(api), make_container(api, "tenant-2")
    nat = {"internal_cidr": "10.0.0.0/24", "external_ip": "203.0.113.10"}
    api.ok("POST", f"/v1/containers/{first}/nat-rules", nat)
    # when another container asks for the same address
    answer = api.call("POST", f"/v1/containers/{second}/nat-rules", nat, key=new_key())
    gateway = api.call(
        "POST", f"/v1/containers/{second}/gateways", {"external_ip": "203.0.113.10"}, key=new_key()
    )
    # then both are refused and the inventory lists the address as held
    assert (answer.status_code, answer.json()["error"]) == (409, "address-in-use")
    assert (gateway.status_code, gateway.json()["error"]) == (409, "address-in-use")
    held = api.get("/v1/external-addresses")["addresses"]
    assert [(h["address"], h["container_id"]) for h in held] == [("203.0.113.10", first)]


def test_token_is_required_when_configured(stamps: Callable[..., StampProcess]) -> None:
    # given a stamp started with a token
    stamp = stamps("locked", token="s3cret")
    # then calls without it, or with a wrong one, are 401
    assert httpx.get(f"{stamp.url}/v1/health").status_code == 401
    wrong = httpx.get(f"{stamp.url}/v1/health", headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "unauthorized")
    # and with it they work
    assert Client(stamp.url, token="s3cret").get("/v1/health")["name"] == "locked"


def test_bad_input_is_400_and_unknown_objects_are_404(api: Client) -> None:
    container = make_container(api)
    bad_json = api.http.post(
        "/v1/containers", content=b"{not json", headers={"Idempotency-Key": new_key()}
    )
    assert (bad_json.status_code, bad_json.json()["error"]) == (400, "invalid")
    bad_cidr = api.call(
        "POST",
        f"/v1/containers/{container}/networks",
        {"name": "n", "cidr": "10.0.0.1/24"},
        key="k",
    )
    assert bad_cidr.status_code == 400
    assert "cidr" in bad_cidr.json()["detail"]
    bad_ports = api.call(
        "POST",
        f"/v1/containers/{container}/firewall-rules",
        {
            "direction": "inbound",
            "action": "allow",
            "source": "any",
            "destination": "any",
            "ports": "0",
        },
        key=new_key(),
    )
    assert bad_ports.status_code == 400
    assert api.call("GET", "/v1/vms/vm-nope").json()["error"] == "not-found"
    assert api.call("DELETE", "/v1/vms/vm-nope", key=new_key()).status_code == 404
    assert api.call("GET", "/v1/nowhere").status_code == 404
    assert api.call("PATCH", "/v1/health").status_code == 405


def test_container_delete_refuses_contents_unless_forced(api: Client) -> None:
    # given a container with a gateway, a network, rules and a VM
    container = make_container(api)
    net = api.ok(
        "POST", f"/v1/containers/{container}/networks", {"name": "n", "cidr": "10.3.0.0/24"}
    )
    api.ok("POST", f"/v1/containers/{container}/gateways", {"external_ip": "198.51.100.7"})
    api.ok(
        "POST",
        f"/v1/containers/{container}/firewall-rules",
        {
            "direction": "inbound",
            "action": "allow",
            "source": "any",
            "destination": "10.3.0.0/24",
            "ports": "22,80-90",
        },
    )
    api.ok("POST", f"/v1/containers/{container}/vms", {**VM, "network_id": net["id"]})
    # when it is deleted without force
    refused = api.call("DELETE", f"/v1/containers/{container}", key=new_key())
    # then 409 in-use; with force everything in it goes
    assert (refused.status_code, refused.json()["error"]) == (409, "in-use")
    api.ok("DELETE", f"/v1/containers/{container}?force=true")
    inventory = api.get("/v1/inventory")
    assert all(inventory[table] == [] for table in ("containers", "networks", "gateways", "vms"))
    assert inventory["firewall_rules"] == []
    assert api.get("/v1/external-addresses")["addresses"] == []


def test_power_state_resize_and_checkpoint_rules(api: Client) -> None:
    # given a running VM with data version 2 and a checkpoint of it
    vm = api.ok("POST", f"/v1/containers/{make_container(api)}/vms", VM)
    path = f"/v1/vms/{vm['id']}"
    api.ok("POST", f"{path}/write", {"amount": 2})
    checkpoint = api.ok("POST", f"{path}/checkpoints", {"name": "before-upgrade"})
    assert checkpoint["data_version"] == 2
    api.ok("POST", f"{path}/write", {"amount": 5})
    # then starting a running VM, resizing or restoring it while running is 409 state
    for action, body in (
        ("start", None),
        ("resize", {"vcpus": 4, "memory_mb": 4096}),
        (f"checkpoints/{checkpoint['id']}/restore", None),
    ):
        answer = api.call("POST", f"{path}/{action}", body, key=new_key())
        assert (answer.status_code, answer.json()["error"]) == (409, "state"), action
    # when it is stopped, resized and restored
    api.ok("POST", f"{path}/stop")
    assert api.ok("POST", f"{path}/resize", {"vcpus": 4, "memory_mb": 4096})["vcpus"] == 4
    restored = api.ok("POST", f"{path}/checkpoints/{checkpoint['id']}/restore")
    # then the data version is the checkpoint's, and the VM restarts
    assert restored["data_version"] == 2
    assert api.ok("POST", f"{path}/start")["power_state"] == "running"
    assert api.ok("POST", f"{path}/restart")["boot_count"] == 3
    api.ok("DELETE", f"{path}/checkpoints/{checkpoint['id']}")
    assert api.get(f"{path}/checkpoints")["checkpoints"] == []


def test_make_server_serves_in_a_thread_and_reports_crash(tmp_path: Path) -> None:
    # given a server in this process with a crash hook instead of an exit
    crashed = threading.Event()
    server = make_server(
        port=0, name="inproc", data_dir=tmp_path, crash_after=1, on_crash=crashed.set
    )
    server.start_in_thread()
    try:
        api = Client(server.url)
        # when one operation is served
        api.ok("POST", "/v1/containers", {"name": "t"})
        # then the crash hook ran and the state file was written
        assert crashed.wait(5)
        assert (tmp_path / "state.json").exists()
    finally:
        server.stop()


def test_the_admin_api_freezes_the_clock_that_history_and_usage_read(api: Client) -> None:
    # given a clock frozen at 10:00:30 UTC (given with another offset)
    frozen = api.http.post("/v1/admin/clock", json={"now": "2030-01-07T11:00:30+01:00"})
    assert frozen.json() == {"now": "2030-01-07T10:00:30.000+00:00", "frozen": True}
    # when a VM is created, and deleted at 10:03:10
    vm = api.ok("POST", f"/v1/containers/{make_container(api)}/vms", VM)
    api.http.post("/v1/admin/clock", json={"now": "2030-01-07T10:03:10Z"})
    assert api.get("/v1/usage")["at"] == "2030-01-07T10:03:10.000+00:00"
    api.ok("DELETE", f"/v1/vms/{vm['id']}")
    # then its history tells those two moments
    history = api.get("/v1/history?since=2030-01-07T10:00:00Z&until=2030-01-07T10:05:00Z")
    (entry,) = [e for e in history["vms"] if e["vm_id"] == vm["id"]]
    assert [(e["event"], e["at"]) for e in entry["events"]] == [
        ("created", "2030-01-07T10:00:30.000+00:00"),
        ("deleted", "2030-01-07T10:03:10.000+00:00"),
    ]
    # and null gives the wall clock back; a clock that is not a time is refused
    assert api.http.post("/v1/admin/clock", json={"now": None}).json()["frozen"] is False
    assert api.get("/v1/usage")["at"].startswith(str(time.gmtime().tm_year))
    for bad in ({"now": "noon"}, {"now": 5}, {"later": None}):
        answer = api.http.post("/v1/admin/clock", json=bad)
        assert answer.status_code == 400, bad
        assert api.get("/v1/admin/clock")["frozen"] is False
