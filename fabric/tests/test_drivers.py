"""The drivers: one behaviour, checked against a memory stamp and a live stampsim."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from fabric.drivers import (
    Conflict,
    Driver,
    DriverError,
    DriverNotAvailable,
    InvalidRequest,
    NotFound,
    OperationFailed,
    OperationTimeout,
    PowerState,
    ReplicationRole,
    ReplicationState,
    StampUnreachable,
    Unauthorized,
    VmKind,
    get_driver,
    memory,
)
from fabric.drivers.memory import MemoryDriver
from fabric.drivers.simulated import SimulatedDriver
from fabric.drivers.stampapi import StampApiDriver
from stampsim.testing import StampProcess, free_port

VM = {"name": "web", "vcpus": 2, "memory_mb": 2048, "disk_gb": 20, "image": "ubuntu-24.04"}


def new_key() -> str:
    return uuid.uuid4().hex


@dataclass
class Stamp:
    """A stamp under test, whatever drives it, with the knobs the tests need."""

    name: str
    endpoint: str
    make_driver: Callable[..., StampApiDriver]
    admin: Callable[[str, str, dict[str, Any] | None], tuple[int, Any]]
    go_down: Callable[[], None]
    come_back: Callable[[], None]
    drivers: list[StampApiDriver] = field(default_factory=list)

    def driver(self, **options: Any) -> StampApiDriver:
        driver = self.make_driver(**options)
        self.drivers.append(driver)
        return driver

    def faults(self, **faults: Any) -> None:
        status, _ = self.admin("POST", "/v1/admin/faults", faults)
        assert status == 200

    def capacity(self, **capacity: int) -> None:
        status, _ = self.admin("POST", "/v1/admin/capacity", capacity)
        assert status == 200


# -- the two kinds of stamp --------------------------------------------------------------
@pytest.fixture(scope="module")
def stampsim_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[StampProcess]]:
    """Two live stampsim processes shared by the module (reset before each test)."""
    root = tmp_path_factory.mktemp("stampsim")
    processes = [StampProcess(name, root / name) for name in ("sim-a", "sim-b")]
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.kill()


def _memory_stamp(name: str) -> Stamp:
    endpoint = f"memory://{name}-{uuid.uuid4().hex[:8]}"
    memory.fabric(endpoint, name)
    return Stamp(
        name=name,
        endpoint=endpoint,
        make_driver=lambda **o: MemoryDriver(name, endpoint, {}, **o),
        admin=lambda method, path, body=None: memory.admin_request(endpoint, method, path, body),
        go_down=lambda: memory.set_reachable(endpoint, False),
        come_back=lambda: memory.restart(endpoint),
    )


def _process_stamp(process: StampProcess) -> Stamp:
    if not process.alive:  # a previous test took it down
        process.start()
    status, _ = process.request("POST", "/v1/admin/reset")
    assert status == 200
    return Stamp(
        name=process.name,
        endpoint=process.url,
        make_driver=lambda **o: SimulatedDriver(process.name, process.url, {}, **o),
        admin=lambda method, path, body=None: process.request(method, path, body),
        go_down=process.kill,
        come_back=process.start,
    )


@pytest.fixture(params=["memory", "simulated"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[Stamp, Stamp]]:
    """Two stamps of one kind: a primary site and a recovery site."""
    if request.param == "memory":
        stamps = (_memory_stamp("mem-a"), _memory_stamp("mem-b"))
    else:
        processes = request.getfixturevalue("stampsim_processes")
        stamps = (_process_stamp(processes[0]), _process_stamp(processes[1]))
    yield stamps
    for stamp in stamps:
        for driver in stamp.drivers:
            driver.close()
    if request.param == "memory":
        memory.reset()


@pytest.fixture
def site(pair: tuple[Stamp, Stamp]) -> Stamp:
    return pair[0]


@pytest.fixture
def driver(site: Stamp) -> StampApiDriver:
    return site.driver(timeout=5.0, backoff=0.01)


def count_sends(monkeypatch: pytest.MonkeyPatch, driver: StampApiDriver) -> list[tuple[str, str]]:
    """Record every request the driver tries (retries included)."""
    sent: list[tuple[str, str]] = []
    original = driver._send

    def counting(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        sent.append((method, path))
        return original(method, path, **kwargs)

    monkeypatch.setattr(driver, "_send", counting)
    return sent


def new_vm(driver: StampApiDriver, container_id: str, **spec: Any) -> Any:
    return driver.create_vm(
        key=new_key(), container_id=container_id, network_id=None, **{**VM, **spec}
    )


# -- behaviour shared by both drivers ---------------------------------------------------
def test_drivers_implement_the_protocol(driver: StampApiDriver) -> None:
    assert isinstance(driver, Driver)
    health = driver.health()
    assert health.status == "ok"
    assert health.allocated.vms == 0
    assert health.free == health.capacity


def test_commissioning_a_container_shows_in_inventory(driver: StampApiDriver) -> None:
    # given a tenant container with an edge gateway, a routed network, SNAT and a firewall rule
    container = driver.create_container(key=new_key(), name="tenant-1")
    gateway = driver.create_gateway(
        key=new_key(), container_id=container.id, external_ip="203.0.113.5"
    )
    network = driver.create_network(
        key=new_key(), container_id=container.id, name="front", cidr="10.10.0.0/24"
    )
    nat = driver.add_nat_rule(
        key=new_key(),
        container_id=container.id,
        internal_cidr="10.10.0.0/24",
        external_ip="203.0.113.6",
    )
    rule = driver.add_firewall_rule(
        key=new_key(),
        container_id=container.id,
        direction="inbound",
        action="allow",
        source="any",
        destination="10.10.0.10",
        ports="443",
    )
    # when a VM is placed on the network with a chosen address
    vm = driver.create_vm(
        key=new_key(),
        container_id=container.id,
        network_id=network.id,
        ip_address="10.10.0.10",
        **VM,
    )
    # then the stamp reports all of it
    assert network.gateway_address == "10.10.0.1"
    assert (vm.ip_address, vm.power_state, vm.kind) == (
        "10.10.0.10",
        PowerState.RUNNING,
        VmKind.NORMAL,
    )
    inventory = driver.inventory()
    assert [c.id for c in inventory.containers] == [container.id]
    assert [g.id for g in inventory.gateways] == [gateway.id]
    assert [n.id for n in inventory.networks] == [network.id]
    assert [r.id for r in inventory.nat_rules] == [nat]
    assert [(r.id, r.destination) for r in inventory.firewall_rules] == [(rule, "10.10.0.10/32")]
    assert [v.id for v in inventory.vms] == [vm.id]
    assert driver.external_addresses() == {"203.0.113.5", "203.0.113.6"}
    assert driver.health().allocated.vcpus == VM["vcpus"]


def test_the_same_key_never_creates_twice(driver: StampApiDriver) -> None:
    # given a container
    container = driver.create_container(key=new_key(), name="tenant-1")
    key = new_key()
    # when a step creating a VM runs twice with its key
    first = driver.create_vm(key=key, container_id=container.id, network_id=None, **VM)
    second = driver.create_vm(key=key, container_id=container.id, network_id=None, **VM)
    # then there is one VM
    assert second.id == first.id
    assert len(driver.inventory().vms) == 1
    # and the key cannot serve another call
    with pytest.raises(Conflict) as refused:
        driver.create_container(key=key, name="other")
    assert refused.value.code == "idempotency-mismatch"


def test_capacity_refusal_is_a_conflict_naming_stamp_and_operation(
    site: Stamp, driver: StampApiDriver
) -> None:
    # given a stamp with 4 vCPUs
    site.capacity(vcpus=4)
    container = driver.create_container(key=new_key(), name="tenant-1")
    # when 8 are asked for
    with pytest.raises(Conflict) as refused:
        new_vm(driver, container.id, vcpus=8)
    # then the error says which stamp and which operation, and is not transient
    assert refused.value.code == "capacity"
    assert str(refused.value).startswith(f"stamp '{site.name}' vm.create: ")
    assert not refused.value.transient
    assert driver.inventory().vms == ()


def test_network_conflicts(driver: StampApiDriver) -> None:
    container = driver.create_container(key=new_key(), name="tenant-1")
    other = driver.create_container(key=new_key(), name="tenant-2")
    driver.create_network(key=new_key(), container_id=container.id, name="a", cidr="10.0.0.0/16")
    with pytest.raises(Conflict) as overlap:
        driver.create_network(
            key=new_key(), container_id=container.id, name="b", cidr="10.0.5.0/24"
        )
    assert overlap.value.code == "cidr-overlap"
    driver.add_nat_rule(
        key=new_key(),
        container_id=container.id,
        internal_cidr="10.0.0.0/16",
        external_ip="198.51.100.1",
    )
    with pytest.raises(Conflict) as taken:
        driver.add_nat_rule(
            key=new_key(),
            container_id=other.id,
            internal_cidr="10.0.0.0/16",
            external_ip="198.51.100.1",
        )
    assert taken.value.code == "address-in-use"
    with pytest.raises(InvalidRequest):
        driver.create_network(key=new_key(), container_id=other.id, name="c", cidr="banana")


def test_deletes_are_idempotent_and_containers_refuse_contents(driver: StampApiDriver) -> None:
    # given a container holding a network and a VM
    container = driver.create_container(key=new_key(), name="tenant-1")
    network = driver.create_network(
        key=new_key(), container_id=container.id, name="n", cidr="10.20.0.0/24"
    )
    vm = driver.create_vm(key=new_key(), container_id=container.id, network_id=network.id, **VM)
    # then the container and the network refuse to go while in use
    with pytest.raises(Conflict) as in_use:
        driver.delete_container(key=new_key(), container_id=container.id)
    assert in_use.value.code == "in-use"
    with pytest.raises(Conflict):
        driver.delete_network(key=new_key(), network_id=network.id)
    # when the VM is deleted twice, and things that never existed are deleted
    driver.delete_vm(key=new_key(), vm_id=vm.id)
    driver.delete_vm(key=new_key(), vm_id=vm.id)
    driver.delete_nat_rule(key=new_key(), rule_id="nat-missing")
    driver.delete_checkpoint(key=new_key(), vm_id=vm.id, checkpoint_id="cp-missing")
    # then nothing complains, and the rest can go
    driver.delete_network(key=new_key(), network_id=network.id)
    driver.delete_container(key=new_key(), container_id=container.id)
    with pytest.raises(NotFound):
        driver.get_vm(vm.id)
    assert driver.inventory().containers == ()


def test_force_delete_removes_everything_in_a_container(driver: StampApiDriver) -> None:
    container = driver.create_container(key=new_key(), name="tenant-1")
    network = driver.create_network(
        key=new_key(), container_id=container.id, name="n", cidr="10.30.0.0/24"
    )
    driver.create_gateway(key=new_key(), container_id=container.id, external_ip="192.0.2.1")
    driver.create_vm(key=new_key(), container_id=container.id, network_id=network.id, **VM)
    driver.delete_container(key=new_key(), container_id=container.id, force=True)
    inventory = driver.inventory()
    assert (inventory.containers, inventory.vms, inventory.networks) == ((), (), ())
    assert driver.external_addresses() == set()


def test_power_resize_and_checkpoints(driver: StampApiDriver) -> None:
    # given a running VM whose guest wrote twice, and a checkpoint
    container = driver.create_container(key=new_key(), name="tenant-1")
    vm = new_vm(driver, container.id)
    driver.simulate_guest_write(key=new_key(), vm_id=vm.id, amount=2)
    checkpoint = driver.create_checkpoint(key=new_key(), vm_id=vm.id, name="before")
    driver.simulate_guest_write(key=new_key(), vm_id=vm.id, amount=3)
    # then actions that make no sense while running are state conflicts
    for action in (
        lambda: driver.start_vm(key=new_key(), vm_id=vm.id),
        lambda: driver.resize_vm(key=new_key(), vm_id=vm.id, vcpus=4, memory_mb=4096),
        lambda: driver.restore_checkpoint(key=new_key(), vm_id=vm.id, checkpoint_id=checkpoint.id),
    ):
        with pytest.raises(Conflict) as refused:
            action()
        assert refused.value.code == "state"
    # when it is stopped, resized, restored and started
    assert driver.stop_vm(key=new_key(), vm_id=vm.id).power_state == PowerState.STOPPED
    resized = driver.resize_vm(key=new_key(), vm_id=vm.id, vcpus=4, memory_mb=4096)
    restored = driver.restore_checkpoint(key=new_key(), vm_id=vm.id, checkpoint_id=checkpoint.id)
    started = driver.start_vm(key=new_key(), vm_id=vm.id)
    # then each step shows
    assert (resized.vcpus, resized.memory_mb) == (4, 4096)
    assert (checkpoint.data_version, restored.data_version) == (2, 2)
    assert started.power_state == PowerState.RUNNING
    assert driver.restart_vm(key=new_key(), vm_id=vm.id).power_state == PowerState.RUNNING
    assert [c.id for c in driver.list_checkpoints(vm.id)] == [checkpoint.id]
    driver.delete_checkpoint(key=new_key(), vm_id=vm.id, checkpoint_id=checkpoint.id)
    driver.delete_checkpoint(key=new_key(), vm_id=vm.id, checkpoint_id=checkpoint.id)
    assert driver.list_checkpoints(vm.id) == []


def test_replication_fails_over_with_the_source_down_and_reverses(
    pair: tuple[Stamp, Stamp],
) -> None:
    primary, recovery = pair
    a = primary.driver(timeout=5.0, backoff=0.01)
    b = recovery.driver(timeout=5.0, backoff=0.01)
    # given a VM on the primary site and a container on the recovery site
    container = a.create_container(key=new_key(), name="tenant-1")
    vm = new_vm(a, container.id)
    dr_container = b.create_container(key=new_key(), name="tenant-1-dr")
    dr_network = b.create_network(
        key=new_key(), container_id=dr_container.id, name="dr", cidr="172.16.0.0/24"
    )
    # when replication is enabled, the guest writes and a sync runs
    enabled = a.enable_replication(
        key=new_key(),
        vm_id=vm.id,
        target_endpoint=recovery.endpoint,
        target_container_id=dr_container.id,
    )
    a.simulate_guest_write(key=new_key(), vm_id=vm.id, amount=7)
    synced = a.sync_replication(key=new_key(), vm_id=vm.id)
    # then the replica on the recovery site carries the data, powered off
    assert (enabled.role, synced.sequence, synced.data_version) == (ReplicationRole.SOURCE, 2, 7)
    assert synced.last_sync_at is not None and synced.last_sync_at >= enabled.last_sync_at
    replica = b.get_vm(enabled.partner_vm_id)
    assert (replica.kind, replica.power_state, replica.data_version) == (
        VmKind.REPLICA,
        PowerState.STOPPED,
        7,
    )
    target_side = b.replication_status(replica.id)
    assert target_side is not None and target_side.role == ReplicationRole.TARGET
    assert target_side.partner_vm_id == vm.id
    # when the primary site is lost and the recovery site fails over onto its network
    primary.go_down()
    with pytest.raises(StampUnreachable):
        a.sync_replication(key=new_key(), vm_id=vm.id)
    failed_over = b.failover_replication(key=new_key(), vm_id=replica.id, network_id=dr_network.id)
    # then the VM runs on the recovery site with the last synced data
    assert (failed_over.kind, failed_over.data_version) == (VmKind.NORMAL, 7)
    assert failed_over.ip_address == "172.16.0.2"
    assert b.start_vm(key=new_key(), vm_id=replica.id).power_state == PowerState.RUNNING
    status = b.replication_status(replica.id)
    assert status is not None and status.state == ReplicationState.FAILED_OVER
    # when the primary site comes back and replication is reversed
    primary.come_back()
    a = primary.driver(timeout=5.0, backoff=0.01)
    reversed_ = b.reverse_replication(
        key=new_key(),
        vm_id=replica.id,
        target_endpoint=primary.endpoint,
        target_container_id=container.id,
    )
    # then the old primary is now the replica of the recovery VM
    assert reversed_.partner_vm_id == vm.id
    assert a.get_vm(vm.id).kind == VmKind.REPLICA
    b.simulate_guest_write(key=new_key(), vm_id=replica.id, amount=1)
    assert b.sync_replication(key=new_key(), vm_id=replica.id).data_version == 8
    assert a.get_vm(vm.id).data_version == 8
    # and disabling it keeps the replica when asked to
    b.disable_replication(key=new_key(), vm_id=replica.id, keep_replica=True)
    b.disable_replication(key=new_key(), vm_id=replica.id)
    assert b.replication_status(replica.id) is None
    assert a.get_vm(vm.id).kind == VmKind.NORMAL


def test_injected_operation_failure_leaves_nothing(site: Stamp, driver: StampApiDriver) -> None:
    # given a fault that fails the next VM creation
    container = driver.create_container(key=new_key(), name="tenant-1")
    site.faults(fail_op_next={"vm.create": 1})
    # when a VM is created
    with pytest.raises(OperationFailed) as failed:
        new_vm(driver, container.id)
    # then the failure is final for that key and nothing was allocated
    assert failed.value.code == "injected-failure"
    assert not failed.value.transient
    assert driver.inventory().vms == ()
    assert driver.health().allocated.vcpus == 0


def test_retries_5xx_then_succeeds_with_one_key(
    site: Stamp, driver: StampApiDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a stamp that answers 503 to the next two VM creations
    container = driver.create_container(key=new_key(), name="tenant-1")
    site.faults(fail_next={"vm.create": 2})
    sent = count_sends(monkeypatch, driver)
    # when a VM is created (3 tries allowed)
    vm = new_vm(driver, container.id)
    # then the third try made exactly one VM
    posts = [s for s in sent if s[0] == "POST"]
    assert len(posts) == 3
    assert [v.id for v in driver.inventory().vms] == [vm.id]


def test_gives_up_after_the_retries_with_a_transient_error(
    site: Stamp, driver: StampApiDriver
) -> None:
    site.faults(fail_next={"container.create": 5})
    with pytest.raises(StampUnreachable) as unreachable:
        driver.create_container(key=new_key(), name="tenant-1")
    assert unreachable.value.transient
    assert "after 3 attempts" in str(unreachable.value)
    assert "injected-failure" in str(unreachable.value)


def test_never_retries_a_4xx(driver: StampApiDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    container = driver.create_container(key=new_key(), name="tenant-1")
    driver.create_network(key=new_key(), container_id=container.id, name="a", cidr="10.9.0.0/24")
    sent = count_sends(monkeypatch, driver)
    with pytest.raises(Conflict):
        driver.create_network(
            key=new_key(), container_id=container.id, name="b", cidr="10.9.0.0/24"
        )
    assert len(sent) == 1


def test_slow_operation_times_out_then_the_same_key_picks_it_up(site: Stamp) -> None:
    # given a stamp where operations take 600 ms and an impatient driver
    impatient = site.driver(timeout=0.2, backoff=0.01)
    site.faults(latency_ms=600)
    key = new_key()
    # when a container is created
    with pytest.raises(OperationTimeout) as timed_out:
        impatient.create_container(key=key, name="tenant-1")
    # then the error is transient, and a patient retry with the key gets the same container
    assert timed_out.value.transient
    patient = site.driver(timeout=5.0, backoff=0.01)
    container = patient.create_container(key=key, name="tenant-1")
    assert [c.id for c in patient.inventory().containers] == [container.id]


def test_operation_interrupted_by_a_restart_fails_for_its_key(site: Stamp) -> None:
    # given an operation still running when the stamp goes down
    impatient = site.driver(timeout=0.2, backoff=0.01)
    site.faults(latency_ms=5000)
    key = new_key()
    with pytest.raises(OperationTimeout):
        impatient.create_container(key=key, name="tenant-1")
    site.go_down()
    # when the stamp comes back
    site.come_back()
    driver = site.driver(timeout=5.0, backoff=0.01)
    # then the key's operation ended failed, and nothing was made
    with pytest.raises(OperationFailed) as failed:
        driver.create_container(key=key, name="tenant-1")
    assert failed.value.code == "interrupted"
    assert driver.inventory().containers == ()


def test_an_unreachable_stamp_raises_stamp_unreachable(site: Stamp) -> None:
    driver = site.driver(timeout=3.0, backoff=0.05)
    site.go_down()
    started = time.monotonic()
    with pytest.raises(StampUnreachable) as unreachable:
        driver.create_container(key=new_key(), name="tenant-1")
    assert time.monotonic() - started < 3.0
    assert str(unreachable.value).startswith(f"stamp '{site.name}' container.create: ")
    assert "connection refused" in str(unreachable.value)
    assert str(unreachable.value).endswith("after 3 attempts")
    site.come_back()


# -- simulated driver specifics -----------------------------------------------------------
def test_closed_port_is_unreachable_within_the_timeout() -> None:
    driver = SimulatedDriver(
        "stamp-x", f"http://127.0.0.1:{free_port()}", {}, timeout=2.0, retries=3, backoff=0.05
    )
    started = time.monotonic()
    with pytest.raises(StampUnreachable) as unreachable:
        driver.create_vm(key=new_key(), container_id="c", network_id=None, **VM)
    assert time.monotonic() - started < 2.0
    assert str(unreachable.value) == (
        "stamp 'stamp-x' vm.create: connection refused after 3 attempts"
    )
    driver.close()


def test_bearer_token_comes_from_credentials(tmp_path: Path) -> None:
    stamp = StampProcess("locked", tmp_path / "locked", token="s3cret").start()
    try:
        without = get_driver("simulated", name="locked", endpoint=stamp.url, credentials={})
        with pytest.raises(Unauthorized):
            without.health()
        with_token = get_driver(
            "simulated", name="locked", endpoint=stamp.url, credentials={"token": "s3cret"}
        )
        assert with_token.health().name == "locked"
        without.close()
        with_token.close()
    finally:
        stamp.kill()


def test_not_json_answers_are_retried_then_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>proxy</html>")

    driver = SimulatedDriver("stamp-y", "http://stamp-y.invalid", {}, timeout=2.0, backoff=0.0)
    driver.close()
    mock = httpx.MockTransport(handler)
    driver._client = httpx.Client(base_url="http://stamp-y.invalid", transport=mock)
    with pytest.raises(StampUnreachable) as unreachable:
        driver.health()
    assert "not JSON" in str(unreachable.value)


# -- factory and errors --------------------------------------------------------------------
def test_get_driver_builds_each_kind() -> None:
    assert isinstance(
        get_driver("memory", name="m", endpoint=f"memory://{new_key()}", credentials={}),
        MemoryDriver,
    )
    simulated = get_driver("simulated", name="s", endpoint="http://127.0.0.1:1", credentials={})
    assert isinstance(simulated, SimulatedDriver)
    simulated.close()
    with pytest.raises(DriverNotAvailable, match="unknown driver kind 'vmware'"):
        get_driver("vmware", name="v", endpoint="x", credentials={})
    memory.reset()


def test_the_libvirt_driver_without_its_binding_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a process where libvirt-python cannot be imported (installed here or not)
    import builtins
    import sys

    real_import = builtins.__import__

    def no_libvirt(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "libvirt":
            raise ImportError("No module named 'libvirt'", name="libvirt")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "fabric.drivers.libvirt", raising=False)
    monkeypatch.delitem(sys.modules, "libvirt", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_libvirt)
    # then the driver names the package and how to install it
    with pytest.raises(DriverNotAvailable, match=r"stamp 'l' driver.load: .*libvirt-python.*"
                       r"pip install '\.\[libvirt\]'"):
        get_driver("libvirt", name="l", endpoint="qemu:///system", credentials={})


def test_error_hierarchy() -> None:
    assert StampUnreachable("s", "op", "m").transient
    assert OperationTimeout("s", "op", "m").transient
    for error in (
        OperationFailed("s", "op", "m"),
        Conflict("s", "op", "m", code="state"),
        NotFound("s", "op", "m"),
        InvalidRequest("s", "op", "m"),
    ):
        assert isinstance(error, DriverError)
        assert not error.transient
    assert str(Conflict("stamp-a", "vm.create", "no room", code="capacity")) == (
        "stamp 'stamp-a' vm.create: no room"
    )
    with pytest.raises(ValueError):
        MemoryDriver("m", "memory://m", {}).create_container(key="", name="x")
    memory.reset()
