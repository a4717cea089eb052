"""The libvirt driver against libvirt's own test driver: a fresh ``test:///<file>.xml``
host per test (each connection to such a URI starts from the file; the driver keeps one
connection per URI per process, so every driver of a test sees the same host).

Skipped when libvirt-python is not installed, unless ``BUFFET_REQUIRE_LIBVIRT=1`` (set
by CI, where it is): then a missing binding fails instead of hiding these tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabric.drivers import (
    Capability,
    Conflict,
    ConflictCode,
    Driver,
    InvalidRequest,
    NotFound,
    PowerState,
    StampUnreachable,
    Unsupported,
    get_driver,
)

if os.environ.get("BUFFET_REQUIRE_LIBVIRT") == "1":
    import libvirt
else:
    libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")

from fabric.drivers import libvirt as lvdriver  # noqa: E402  (needs the binding)
from fabric.drivers import libvirt_conn  # noqa: E402
from fabric.drivers.libvirt import LibvirtDriver  # noqa: E402

NODE = """<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>16</active><nodes>1</nodes>
    <sockets>1</sockets><cores>8</cores><threads>2</threads></cpu>
  <memory>33554432</memory>
  <pool type='dir'>
    <name>default</name>
    <capacity unit='GiB'>100</capacity><allocation unit='GiB'>0</allocation>
    <target><path>/var/lib/libvirt/images</path></target>
  </pool>
</node>
"""
VM = {"name": "web", "vcpus": 2, "memory_mb": 2048, "disk_gb": 20, "image": "debian-12"}


def new_key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def uri(tmp_path: Path) -> Iterator[str]:
    """A libvirt host of its own: 16 CPUs, 32 GiB, a 100 GiB pool, no domains."""
    node = tmp_path / "node.xml"
    node.write_text(NODE)
    uri = f"test://{node}"
    yield uri
    lvdriver.forget(uri)


@pytest.fixture
def driver(uri: str) -> LibvirtDriver:
    return get_driver("libvirt", name="kvm-a", endpoint=uri, timeout=5.0)


@pytest.fixture
def host(uri: str, driver: LibvirtDriver) -> libvirt.virConnect:
    """libvirt itself, on the driver's connection (the test host's state is per connection)."""
    return libvirt_conn.open_connection(uri, {})


@pytest.fixture
def container(driver: LibvirtDriver) -> str:
    return driver.create_container(key=new_key(), name="sub-1").id


@pytest.fixture
def network(driver: LibvirtDriver, container: str) -> str:
    return driver.create_network(key=new_key(), container_id=container, name="default",
                                 cidr="10.20.0.0/24").id


def make_vm(driver: LibvirtDriver, container: str, network: str | None, *, key: str | None = None,
            ip: str | None = "10.20.0.10", **spec):
    return driver.create_vm(key=key or new_key(), container_id=container, network_id=network,
                            ip_address=ip if network else None, **{**VM, **spec})


# -- registration -------------------------------------------------------------------------
def test_the_driver_is_registered_with_its_capabilities(driver):
    assert isinstance(driver, LibvirtDriver)
    assert isinstance(driver, Driver)  # every method of the protocol
    assert Capability.REPLICATION not in driver.capabilities
    assert Capability.GATEWAYS not in driver.capabilities


# -- reads -------------------------------------------------------------------------------
def test_health_reports_the_hosts_capacity_and_what_its_domains_take(driver, container):
    # given one VM of 2 vCPUs, 2 GiB and a 20 GiB disk
    make_vm(driver, container, None)
    # when
    health = driver.health()
    # then the capacity is the host's (getInfo and its pool), the allocation its domains'
    assert health.status == "ok"
    assert (health.capacity.vcpus, health.capacity.memory_mb, health.capacity.storage_gb) == (
        16, 32768, 100)
    assert (health.allocated.vcpus, health.allocated.memory_mb, health.allocated.storage_gb,
            health.allocated.vms) == (2, 2048, 20, 1)


def test_an_unreachable_host_is_a_transient_error():
    driver = get_driver("libvirt", name="far", endpoint="qemu+tcp://127.0.0.1:1/system")
    with pytest.raises(StampUnreachable, match="stamp 'far' health") as caught:
        driver.health()
    assert caught.value.transient


def test_the_inventory_lists_buffets_objects_only(driver, host, container, network):
    # given a domain Buffet did not make, next to one it made
    host.defineXML("<domain type='test'><name>other</name><memory unit='MiB'>256</memory>"
                   "<os><type>hvm</type></os></domain>")
    vm = make_vm(driver, container, network)
    checkpoint = driver.create_checkpoint(key=new_key(), vm_id=vm.id, name="before")
    # when
    inventory = driver.inventory()
    # then
    assert [c.id for c in inventory.containers] == [container]
    assert [(n.id, n.cidr, n.gateway_address, n.kind) for n in inventory.networks] == [
        (network, "10.20.0.0/24", "10.20.0.1", "routed")]
    assert [(v.id, v.ip_address, v.power_state) for v in inventory.vms] == [
        (vm.id, "10.20.0.10", PowerState.RUNNING)]
    assert [c.id for c in inventory.checkpoints] == [checkpoint.id]
    assert inventory.gateways == inventory.nat_rules == inventory.replications == ()
    assert [(u.id, u.vcpus, u.memory_mb, u.disk_gb, u.checkpoints, u.running)
            for u in driver.usage()] == [(vm.id, 2, 2048, 20, 1, True)]


# -- every operation twice gives the same result ---------------------------------------
def test_containers_and_networks_twice(driver, host):
    key, net_key = new_key(), new_key()
    first = driver.create_container(key=key, name="sub-1")
    assert driver.create_container(key=key, name="sub-1") == first
    net = driver.create_network(key=net_key, container_id=first.id, name="default",
                                cidr="10.1.0.0/24")
    assert driver.create_network(key=net_key, container_id=first.id, name="default",
                                 cidr="10.1.0.0/24") == net
    assert host.networkLookupByUUIDString(net.id).isActive()
    assert len(driver.inventory().networks) == 1
    driver.delete_network(key=new_key(), network_id=net.id)
    driver.delete_network(key=new_key(), network_id=net.id)
    driver.delete_container(key=new_key(), container_id=first.id)
    driver.delete_container(key=new_key(), container_id=first.id)
    assert driver.inventory().containers == driver.inventory().networks == ()


def test_create_vm_twice_defines_one_domain_with_its_metadata(driver, host, container, network):
    key = new_key()
    first = make_vm(driver, container, network, key=key)
    again = make_vm(driver, container, network, key=key)
    assert again == first
    assert first.power_state == PowerState.RUNNING
    domains = host.listAllDomains()
    assert [d.UUIDString() for d in domains] == [first.id]
    # its UUID derives from the key; the metadata carries the container and the spec hash
    assert first.id == str(uuid.uuid5(uuid.UUID("0d7b6c1e-3f6a-5b8e-9c1d-2a4e6f8b0c3d"),
                                       f"vm:{key}"))
    meta = domains[0].metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, lvdriver.lx.NS,
                               libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert f'container="{container}"' in meta and 'container-name="sub-1"' in meta
    assert 'name="vm.create"' in meta and 'done="1"' in meta
    # the address is the network's DHCP host entry for the VM's MAC
    xml = host.networkLookupByUUIDString(network).XMLDesc(0)
    assert f"mac='{lvdriver.lx.mac_for(first.id)}'" in xml.replace('"', "'")
    assert "ip='10.20.0.10'" in xml.replace('"', "'")


@pytest.mark.parametrize("call, state", [
    ("stop_vm", PowerState.STOPPED), ("restart_vm", PowerState.RUNNING)])
def test_power_calls_twice_act_once(driver, container, call, state):
    vm = make_vm(driver, container, None)
    key = new_key()
    first = getattr(driver, call)(key=key, vm_id=vm.id)
    assert getattr(driver, call)(key=key, vm_id=vm.id) == first
    assert first.power_state == state


def test_start_twice_and_a_new_start_of_a_running_vm_is_a_state_conflict(driver, container):
    vm = make_vm(driver, container, None, power_on=False)
    assert vm.power_state == PowerState.STOPPED
    key = new_key()
    assert driver.start_vm(key=key, vm_id=vm.id).power_state == PowerState.RUNNING
    assert driver.start_vm(key=key, vm_id=vm.id).power_state == PowerState.RUNNING
    with pytest.raises(Conflict) as caught:
        driver.start_vm(key=new_key(), vm_id=vm.id)
    assert caught.value.code == ConflictCode.STATE


def test_resize_twice_changes_the_configuration_once(driver, container):
    vm = make_vm(driver, container, None)
    driver.stop_vm(key=new_key(), vm_id=vm.id)
    key = new_key()
    first = driver.resize_vm(key=key, vm_id=vm.id, vcpus=4, memory_mb=4096)
    assert driver.resize_vm(key=key, vm_id=vm.id, vcpus=4, memory_mb=4096) == first
    assert (first.vcpus, first.memory_mb) == (4, 4096)
    started = driver.start_vm(key=new_key(), vm_id=vm.id)
    assert (started.vcpus, started.memory_mb) == (4, 4096)
    with pytest.raises(Conflict) as caught:  # a running VM is resized stopped
        driver.resize_vm(key=new_key(), vm_id=vm.id, vcpus=1, memory_mb=1024)
    assert caught.value.code == ConflictCode.STATE


def test_checkpoints_twice_and_a_restore_keeps_todays_size_and_records(driver, container):
    vm = make_vm(driver, container, None)
    key = new_key()
    checkpoint = driver.create_checkpoint(key=key, vm_id=vm.id, name="before upgrade")
    assert driver.create_checkpoint(key=key, vm_id=vm.id, name="before upgrade") == checkpoint
    assert checkpoint.id == key  # the snapshot is named after its key
    assert driver.list_checkpoints(vm.id) == [checkpoint]
    # given the VM stopped and grown since the checkpoint
    stop = new_key()
    driver.stop_vm(key=stop, vm_id=vm.id)
    driver.resize_vm(key=new_key(), vm_id=vm.id, vcpus=4, memory_mb=4096)
    # when restored twice with one key
    restore = new_key()
    first = driver.restore_checkpoint(key=restore, vm_id=vm.id, checkpoint_id=checkpoint.id)
    assert driver.restore_checkpoint(key=restore, vm_id=vm.id,
                                     checkpoint_id=checkpoint.id) == first
    # then it stays stopped, keeps its size, and still knows the keys done before
    assert (first.power_state, first.vcpus, first.memory_mb) == (PowerState.STOPPED, 4, 4096)
    assert driver.stop_vm(key=stop, vm_id=vm.id).power_state == PowerState.STOPPED
    driver.delete_checkpoint(key=new_key(), vm_id=vm.id, checkpoint_id=checkpoint.id)
    driver.delete_checkpoint(key=new_key(), vm_id=vm.id, checkpoint_id=checkpoint.id)
    assert driver.list_checkpoints(vm.id) == []


def test_delete_vm_twice_removes_its_checkpoints_disk_and_address(driver, host, container,
                                                                   network):
    vm = make_vm(driver, container, network)
    driver.create_checkpoint(key=new_key(), vm_id=vm.id, name="c")  # undefine refuses these
    pool = host.storagePoolLookupByName("default")
    assert len(pool.listAllVolumes()) == 1
    driver.delete_vm(key=new_key(), vm_id=vm.id)
    driver.delete_vm(key=new_key(), vm_id=vm.id)
    assert host.listAllDomains() == []
    assert pool.listAllVolumes() == []
    assert "10.20.0.10" not in host.networkLookupByUUIDString(network).XMLDesc(0)
    with pytest.raises(NotFound):
        driver.get_vm(vm.id)
    with pytest.raises(NotFound):  # what the delete runbook asks first
        driver.replication_status(vm.id)


def test_a_forced_container_delete_takes_everything_in_it(driver, host, container, network):
    make_vm(driver, container, network)
    with pytest.raises(Conflict) as caught:
        driver.delete_container(key=new_key(), container_id=container)
    assert caught.value.code == ConflictCode.IN_USE
    driver.delete_container(key=new_key(), container_id=container, force=True)
    assert host.listAllDomains() == [] and host.listAllNetworks() == []


# -- a create cut short --------------------------------------------------------------------
def test_a_create_interrupted_after_define_is_completed_by_the_retried_step(
        driver, host, container, network, monkeypatch):
    # given a create whose start fails once, after the domain was defined
    key = new_key()
    real_create = libvirt.virDomain.create
    calls = []

    def crash_once(domain):
        calls.append(domain.UUIDString())
        if len(calls) == 1:
            raise libvirt.libvirtError("worker killed")
        return real_create(domain)

    monkeypatch.setattr(libvirt.virDomain, "create", crash_once)
    with pytest.raises(Exception, match="worker killed"):
        make_vm(driver, container, network, key=key)
    [domain] = host.listAllDomains()
    assert not domain.isActive()
    # when the step runs again with its key
    vm = make_vm(driver, container, network, key=key)
    # then the same domain is started, nothing is defined twice
    assert vm.power_state == PowerState.RUNNING
    assert [d.UUIDString() for d in host.listAllDomains()] == [vm.id] == [domain.UUIDString()]
    assert len(host.storagePoolLookupByName("default").listAllVolumes()) == 1
    assert make_vm(driver, container, network, key=key) == vm
    assert len(calls) == 2


def test_a_start_cut_short_after_acting_is_finished_not_refused(driver, host, container,
                                                                monkeypatch):
    # given a start that started the domain, then failed before it recorded its key done
    vm = make_vm(driver, container, None, power_on=False)
    key = new_key()
    real = libvirt.virDomain.setMetadata
    writes = []

    def fail_second_write(domain, *args):
        writes.append(args)
        if len(writes) == 2:
            raise libvirt.libvirtError("connection lost")
        return real(domain, *args)

    monkeypatch.setattr(libvirt.virDomain, "setMetadata", fail_second_write)
    with pytest.raises(Exception, match="connection lost"):
        driver.start_vm(key=key, vm_id=vm.id)
    assert host.lookupByUUIDString(vm.id).isActive()
    # when retried: libvirt's state is read again; "already running" is not an error
    assert driver.start_vm(key=key, vm_id=vm.id).power_state == PowerState.RUNNING
    with pytest.raises(Conflict):  # while another key's start is refused
        driver.start_vm(key=new_key(), vm_id=vm.id)


# -- errors ---------------------------------------------------------------------------------
def test_a_key_reused_for_another_call_is_a_mismatch(driver, container):
    key = new_key()
    make_vm(driver, container, None, key=key)
    with pytest.raises(Conflict) as caught:
        make_vm(driver, container, None, key=key, vcpus=8)
    assert caught.value.code == ConflictCode.IDEMPOTENCY_MISMATCH
    vm = make_vm(driver, container, None)
    stop = new_key()
    driver.stop_vm(key=stop, vm_id=vm.id)
    with pytest.raises(Conflict) as caught:
        driver.start_vm(key=stop, vm_id=vm.id)
    assert caught.value.code == ConflictCode.IDEMPOTENCY_MISMATCH


def test_libvirt_errors_map_to_driver_errors(driver, container, network):
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound, match="stamp 'kvm-a' vm.start"):
        driver.start_vm(key=new_key(), vm_id=missing)
    with pytest.raises(NotFound):
        driver.create_vm(key=new_key(), container_id=str(uuid.uuid4()), network_id=None, **VM)
    make_vm(driver, container, network)
    with pytest.raises(Conflict) as caught:  # the address is the first VM's
        make_vm(driver, container, network)
    assert caught.value.code == ConflictCode.ADDRESS_IN_USE
    with pytest.raises(Conflict) as caught:
        driver.create_network(key=new_key(), container_id=container, name="b",
                              cidr="10.20.0.128/25")
    assert caught.value.code == ConflictCode.CIDR_OVERLAP
    with pytest.raises(InvalidRequest):
        driver.create_network(key=new_key(), container_id=container, name="c", cidr="nope")
    with pytest.raises(Conflict) as caught:
        driver.delete_network(key=new_key(), network_id=network)
    assert caught.value.code == ConflictCode.IN_USE


@pytest.mark.parametrize("code, error", [
    (libvirt.VIR_ERR_NO_DOMAIN, NotFound),
    (libvirt.VIR_ERR_OPERATION_FAILED, Conflict),
    (libvirt.VIR_ERR_OPERATION_INVALID, Conflict),
    (libvirt.VIR_ERR_NO_SUPPORT, Unsupported),
    (libvirt.VIR_ERR_SYSTEM_ERROR, StampUnreachable),
])
def test_error_codes(driver, code, error):
    exc = libvirt.libvirtError("boom")
    exc.err = (code, 0, "boom", 0, "", None, None, 0, 0)
    mapped = driver._error("vm.start", exc)
    assert type(mapped) is error
    assert str(mapped).startswith("stamp 'kvm-a' vm.start: ")
    assert str(mapped).endswith(f"boom (libvirt error {code})")


def test_what_libvirt_cannot_do_is_unsupported_not_faked(driver, container):
    vm = make_vm(driver, container, None)
    for call in (
        lambda: driver.create_gateway(key=new_key(), container_id=container,
                                      external_ip="203.0.113.5"),
        lambda: driver.add_firewall_rule(key=new_key(), container_id=container,
                                         direction="outbound", action="allow",
                                         source="10.0.0.0/24", destination="any"),
        lambda: driver.add_nat_rule(key=new_key(), container_id=container,
                                    internal_cidr="10.0.0.0/24", external_ip="203.0.113.5"),
        lambda: driver.enable_replication(key=new_key(), vm_id=vm.id, target_endpoint="x",
                                          target_container_id="y"),
        lambda: driver.read_file(vm.id, "/etc/hostname"),
    ):
        with pytest.raises(Unsupported, match="a libvirt stamp has no"):
            call()
    assert driver.external_addresses() == set()


def test_one_connection_per_uri_so_every_driver_sees_one_host(uri, container, driver):
    # given a second driver built for the same test:/// URI (a fresh connection would
    # start from the node file again, without the container)
    other = get_driver("libvirt", name="kvm-a", endpoint=uri)
    # then it sees what the first made
    assert [c.id for c in other.inventory().containers] == [container]
