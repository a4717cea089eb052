"""``LibvirtDriver``: a real hypervisor (KVM/QEMU, or libvirt's own ``test:///``) through
libvirt-python.

The endpoint is a libvirt URI (``qemu+ssh://root@host/system``, ``qemu:///system``,
``test:///default``, ``test:///<absolute path>.xml``); ``credentials`` may hold
``username`` and ``password`` for URIs that ask for them (SSH keys come from the
worker's own agent or ``~/.ssh``).

How the driver keeps the ``Driver`` rules on a hypervisor that has no idempotency keys:

* every object's UUID derives from the call's key (uuid5), so a retried create finds
  what the first try made; a domain carries ``<metadata>`` in Buffet's namespace
  (``libvirt_xml``) with its spec hash and its last operations by key, so a retried
  start, stop, resize or restore returns the first outcome, and a create interrupted
  after the domain was defined is completed (its disk, address and power) by the retry;
* a checkpoint is the snapshot named after its key;
* deleting what is gone succeeds.

A tenant container is a naming scope (an inactive network that only holds its
metadata); a tenant network is a libvirt network in ``route``, ``nat`` or isolated mode,
with a DHCP host entry per VM for its address (both in ``libvirt_networks``). Gateways,
firewall and NAT rules, replication and guest files are not libvirt's: ``capabilities``
leaves them out and their calls raise ``Unsupported``.

One connection per URI per process: a ``test:///<file>.xml`` connection has its own
fresh state, so every driver built in a process must share it (``forget`` drops it).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Self

import libvirt

from . import libvirt_xml as lx
from .base import (
    Capability,
    Capacity,
    CheckpointInfo,
    Conflict,
    ConflictCode,
    DriverError,
    GuestFile,
    InvalidRequest,
    Inventory,
    NotFound,
    PowerState,
    ReplicationInfo,
    StampHealth,
    Unsupported,
    VmHistory,
    VmInfo,
    VmKind,
    VmUsage,
)
from .libvirt_conn import (
    INVALID,
    STATE,
    UNSUPPORTED,
    error_for,
    forget,
    open_connection,
    translated,
)
from .libvirt_networks import LibvirtNetworking, container_info, network_info

__all__ = ["LIBVIRT_CAPABILITIES", "LibvirtDriver", "forget"]

LIBVIRT_CAPABILITIES: frozenset[Capability] = frozenset()  # see the module docstring
_GIB = 1024**3

# -- the driver -----------------------------------------------------------------------------

class LibvirtDriver(LibvirtNetworking):
    """A libvirt host as a stamp (see the module docstring).

    ``timeout`` bounds a graceful shutdown before the VM is powered off; ``pool`` names
    the storage pool VM disks go to (default: ``default``, else the host's only active
    pool); ``max_vms`` is the VM count reported as capacity (libvirt sets none).
    """

    kind = "libvirt"
    capabilities = LIBVIRT_CAPABILITIES

    def __init__(
        self,
        name: str,
        endpoint: str,
        credentials: Mapping[str, Any] | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        pool: str | None = None,
        max_vms: int = 256,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.name = name
        self.endpoint = endpoint
        self.timeout = timeout
        self.pool_name = pool
        self.max_vms = max_vms
        self._credentials = dict(credentials or {})
        del retries, backoff  # libvirt's own RPC retries; a call is tried once here

    def __repr__(self) -> str:
        return f"LibvirtDriver(name={self.name!r}, endpoint={self.endpoint!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: the process keeps its one connection to the URI."""

    @property
    def _conn(self) -> libvirt.virConnect:
        return open_connection(self.endpoint, self._credentials)  # errors: the calling operation's

    # -- errors -------------------------------------------------------------------------
    def _error(self, operation: str, exc: libvirt.libvirtError) -> DriverError:
        return error_for(self.name, self.endpoint, operation, exc)

    def _unsupported(self, operation: str, what: str) -> Unsupported:
        return Unsupported(self.name, operation, f"a libvirt stamp has no {what}")

    def _mismatch(self, operation: str, key: str) -> Conflict:
        return Conflict(self.name, operation, f"key {key!r} was used for another call",
                        code=ConflictCode.IDEMPOTENCY_MISMATCH)

    # -- lookups ------------------------------------------------------------------------
    def _domain(self, operation: str, vm_id: str) -> tuple[libvirt.virDomain, lx.VmMeta]:
        try:
            domain = self._conn.lookupByUUIDString(vm_id)
        except (libvirt.libvirtError, ValueError):
            raise NotFound(self.name, operation, f"no VM {vm_id!r}", code="not-found") from None
        meta = lx.parse_vm_meta(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if meta is None:
            raise NotFound(self.name, operation, f"domain {vm_id!r} is not Buffet's",
                           code="not-found")
        return domain, meta

    def _find_domain(self, vm_id: str) -> libvirt.virDomain | None:
        try:
            return self._conn.lookupByUUIDString(vm_id)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def _domains(self) -> Iterator[tuple[libvirt.virDomain, lx.VmMeta]]:
        for domain in self._conn.listAllDomains():
            meta = lx.parse_vm_meta(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            if meta is not None:
                yield domain, meta

    def _pool(self) -> libvirt.virStoragePool | None:
        conn = self._conn
        if self.pool_name:
            return conn.storagePoolLookupByName(self.pool_name)
        pools = [p for p in conn.listAllStoragePools() if p.isActive()]
        named = [p for p in pools if p.name() == "default"]
        if named:
            return named[0]
        return pools[0] if len(pools) == 1 else None

    # -- results ------------------------------------------------------------------------
    def _vm_info(self, domain: libvirt.virDomain, meta: lx.VmMeta) -> VmInfo:
        _state, _max_kib, memory_kib, vcpus, _cpu = domain.info()
        if not domain.isActive():  # the persistent configuration is the VM's size
            config = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            vcpus, memory_kib = lx.domain_size(config)
        return VmInfo(
            id=meta.id, container_id=meta.container_id, name=meta.name, vcpus=vcpus,
            memory_mb=memory_kib // 1024, disk_gb=meta.disk_gb, image=meta.image,
            network_id=meta.network_id, ip_address=meta.ip_address,
            power_state=PowerState.RUNNING if domain.isActive() else PowerState.STOPPED,
            kind=VmKind.NORMAL, data_version=0)

    def _checkpoint_info(self, vm_id: str, snapshot: libvirt.virDomainSnapshot) -> CheckpointInfo:
        name, created = lx.snapshot_fields(snapshot.getXMLDesc(0))
        return CheckpointInfo(id=snapshot.getName(), vm_id=vm_id, name=name, data_version=0,
                              created_at=created)

    # -- reads --------------------------------------------------------------------------
    @translated("health")
    def health(self) -> StampHealth:
        conn = self._conn
        _model, memory_mb, cpus, *_ = conn.getInfo()
        vcpus = memory_kib = 0
        domains = conn.listAllDomains()
        for domain in domains:
            _state, max_kib, _mem, nr_vcpus, _cpu = domain.info()
            vcpus, memory_kib = vcpus + nr_vcpus, memory_kib + max_kib
        pool = self._pool()
        storage, used = (0, 0)
        if pool is not None:
            _pool_state, capacity, allocation, _available = pool.info()
            storage, used = capacity // _GIB, -(-allocation // _GIB)
        return StampHealth(
            name=self.name, status="ok",
            capacity=Capacity(vcpus=cpus, memory_mb=memory_mb, storage_gb=storage,
                              vms=self.max_vms),
            allocated=Capacity(vcpus=vcpus, memory_mb=memory_kib // 1024, storage_gb=used,
                               vms=len(domains)))

    @translated("inventory")
    def inventory(self) -> Inventory:
        containers, networks = [], []
        for _network, meta in self._networks():
            if isinstance(meta, lx.ContainerMeta):
                containers.append(container_info(meta))
            else:
                networks.append(network_info(meta))
        vms, checkpoints = [], []
        for domain, meta in self._domains():
            vms.append(self._vm_info(domain, meta))
            checkpoints.extend(self._checkpoint_info(meta.id, s)
                               for s in domain.listAllSnapshots())
        return Inventory(name=self.name, containers=tuple(containers), gateways=(),
                         networks=tuple(networks), nat_rules=(), firewall_rules=(),
                         vms=tuple(vms), checkpoints=tuple(checkpoints), replications=())

    def external_addresses(self) -> set[str]:
        return set()  # no gateways nor NAT rules hold any

    @translated("vm.get")
    def get_vm(self, vm_id: str) -> VmInfo:
        return self._vm_info(*self._domain("vm.get", vm_id))

    @translated("checkpoint.list")
    def list_checkpoints(self, vm_id: str) -> list[CheckpointInfo]:
        domain, meta = self._domain("checkpoint.list", vm_id)
        return [self._checkpoint_info(meta.id, s) for s in domain.listAllSnapshots()]

    @translated("replication.status")
    def replication_status(self, vm_id: str) -> ReplicationInfo | None:
        self._domain("replication.status", vm_id)  # NotFound for a VM that is gone
        return None

    @translated("usage")
    def usage(self) -> list[VmUsage]:
        result = []
        for domain, meta in self._domains():
            info = self._vm_info(domain, meta)
            result.append(VmUsage(info.id, info.vcpus, info.memory_mb, info.disk_gb,
                                  domain.snapshotNum(), False,
                                  info.power_state == PowerState.RUNNING))
        return result

    def usage_history(self, since: datetime, until: datetime) -> list[VmHistory]:
        raise self._unsupported("history", "usage history (libvirt keeps none)")

    # -- VMs ----------------------------------------------------------------------------------
    @translated("vm.create")
    def create_vm(self, *, key: str, container_id: str, name: str, vcpus: int, memory_mb: int,
                  disk_gb: int, image: str, network_id: str | None,
                  ip_address: str | None = None, power_on: bool = True) -> VmInfo:
        operation = "vm.create"
        vm_id = lx.derived_id("vm", key)
        spec = lx.fingerprint(container_id=container_id, name=name, vcpus=vcpus,
                              memory_mb=memory_mb, disk_gb=disk_gb, image=image,
                              network_id=network_id, ip_address=ip_address, power_on=power_on)
        domain = self._find_domain(vm_id)
        if domain is None:
            domain = self._define_vm(
                key, vm_id, spec, container_id=container_id, name=name, vcpus=vcpus,
                memory_mb=memory_mb, disk_gb=disk_gb, image=image, network_id=network_id,
                ip_address=ip_address)
        meta = lx.parse_vm_meta(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if meta is None or meta.spec != spec:
            raise self._mismatch(operation, key)
        done = meta.op(key)
        if done is not None and done.done:
            return self._vm_info(domain, meta)
        # The rest of a create is repeatable: a try cut short after the define ends here.
        if meta.network_id and meta.ip_address:
            self._add_dhcp_host(meta)
        if power_on and not domain.isActive():
            domain.create()
        meta = self._record(domain, meta, lx.Op(key, operation, spec, True))
        return self._vm_info(domain, meta)

    def _define_vm(self, key: str, vm_id: str, spec: str, *, container_id: str, name: str,
                   vcpus: int, memory_mb: int, disk_gb: int, image: str,
                   network_id: str | None, ip_address: str | None) -> libvirt.virDomain:
        operation = "vm.create"
        container = self._container(operation, container_id)
        if vcpus < 1 or memory_mb < 64 or disk_gb < 0:
            raise InvalidRequest(self.name, operation,
                                 "a VM needs at least 1 vCPU, 64 MB and a disk size >= 0")
        network_name = None
        if network_id is not None:
            network, net = self._network(operation, network_id)
            if net.container_id != container_id:
                raise InvalidRequest(self.name, operation,
                                     f"network {network_id!r} belongs to another container")
            ip_address = self._address(net, ip_address)
            network_name = network.name()
        elif ip_address is not None:
            raise InvalidRequest(self.name, operation, "ip_address needs a network_id")
        disk_path, volume = self._create_volume(vm_id, disk_gb, image)
        meta = lx.VmMeta(id=vm_id, container_id=container_id, container_name=container.name,
                         name=name, image=image, disk_gb=disk_gb, network_id=network_id,
                         ip_address=ip_address, spec=spec, volume=volume,
                         created_at=lx.now()).with_op(lx.Op(key, operation, spec, False))
        domain_type = "test" if self._conn.getType().lower() == "test" else "kvm"
        return self._conn.defineXML(lx.domain_xml(
            meta, domain_type=domain_type, vcpus=vcpus, memory_mb=memory_mb,
            disk_path=disk_path, network_name=network_name))

    def _address(self, net: lx.NetworkMeta, requested: str | None) -> str:
        operation = "vm.create"
        cidr = ipaddress.ip_network(net.cidr)
        taken = {m.ip_address for _d, m in self._domains() if m.network_id == net.id}
        gateway = str(next(cidr.hosts()))
        if requested is not None:
            try:
                address = ipaddress.ip_address(requested)
            except ValueError:
                raise InvalidRequest(self.name, operation,
                                     f"{requested!r} is not an address") from None
            if address not in cidr or str(address) in (gateway, str(cidr.network_address),
                                                       str(cidr.broadcast_address)):
                raise InvalidRequest(self.name, operation,
                                     f"ip_address {address} is not a usable host of {cidr}")
            if str(address) in taken:
                raise Conflict(self.name, operation,
                               f"{address} is already used on network {net.id!r}",
                               code=ConflictCode.ADDRESS_IN_USE)
            return str(address)
        for host in map(str, cidr.hosts()):
            if host != gateway and host not in taken:
                return host
        raise Conflict(self.name, operation, f"network {net.id!r} has no free address left",
                       code=ConflictCode.ADDRESS_IN_USE)

    def _create_volume(self, vm_id: str, disk_gb: int, image: str) -> tuple[str | None, str]:
        pool = self._pool()
        if pool is None or disk_gb == 0:
            return None, ""
        name = f"{lx.VM_PREFIX}{vm_id}.qcow2"
        try:
            return pool.storageVolLookupByName(name).path(), name
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise
        backing = None
        for candidate in (image, f"{image}.qcow2"):
            try:
                backing = pool.storageVolLookupByName(candidate).path()
                break
            except libvirt.libvirtError:
                continue
        return pool.createXML(lx.volume_xml(name, disk_gb, backing), 0).path(), name

    def _dhcp(self, meta: lx.VmMeta) -> tuple[libvirt.virNetwork | None, str]:
        network = self._find_network(meta.network_id or "")
        entry = f"<host mac='{lx.mac_for(meta.id)}' ip='{meta.ip_address}'/>"
        return network, entry

    def _add_dhcp_host(self, meta: lx.VmMeta) -> None:
        network, entry = self._dhcp(meta)
        if network is None or (lx.mac_for(meta.id), meta.ip_address) in lx.dhcp_hosts(
                network.XMLDesc(0)):
            return
        network.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
                       libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, entry, _affect(network))

    def _remove_dhcp_host(self, meta: lx.VmMeta) -> None:
        network, entry = self._dhcp(meta)
        if network is None or (lx.mac_for(meta.id), meta.ip_address) not in lx.dhcp_hosts(
                network.XMLDesc(0)):
            return
        network.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
                       libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, entry, _affect(network))

    def _record(self, domain: libvirt.virDomain, meta: lx.VmMeta, op: lx.Op) -> lx.VmMeta:
        meta = meta.with_op(op)
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if domain.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, meta.to_xml(), lx.PREFIX, lx.NS,
                           flags)
        return meta

    def _keyed(self, operation: str, key: str, vm_id: str, fp: str, *,
               needs_running: bool | None,
               act: Callable[[libvirt.virDomain, lx.VmMeta], object]) -> VmInfo:
        """One keyed change of a VM: the first call acts, a repeat returns the outcome.

        The key is recorded before ``act`` and marked done after it: a try cut short in
        between is acted on again, and ``act`` re-reads libvirt's state (a VM already
        started is not started twice, and no "already running" error escapes)."""
        domain, meta = self._domain(operation, vm_id)
        prior = meta.op(key)
        if prior is not None:
            if prior.name != operation or prior.fp != fp:
                raise self._mismatch(operation, key)
            if prior.done:
                return self._vm_info(domain, meta)
        elif needs_running is not None and bool(domain.isActive()) != needs_running:
            state = "stopped" if needs_running else "running"
            raise Conflict(self.name, operation, f"VM {vm_id!r} is {state}",
                           code=ConflictCode.STATE)
        else:
            meta = self._record(domain, meta, lx.Op(key, operation, fp, False))
        act(domain, meta)
        domain, meta = self._domain(operation, vm_id)  # re-read: ``act`` may redefine it
        meta = self._record(domain, meta, lx.Op(key, operation, fp, True))
        return self._vm_info(domain, meta)

    @translated("vm.start")
    def start_vm(self, *, key: str, vm_id: str) -> VmInfo:
        def start(domain: libvirt.virDomain, _meta: lx.VmMeta) -> bool:
            if domain.isActive():
                return False
            domain.create()
            return True

        return self._keyed("vm.start", key, vm_id, "", needs_running=False, act=start)

    @translated("vm.stop")
    def stop_vm(self, *, key: str, vm_id: str) -> VmInfo:
        return self._keyed("vm.stop", key, vm_id, "", needs_running=True, act=self._power_off)

    def _power_off(self, domain: libvirt.virDomain, _meta: lx.VmMeta | None = None) -> bool:
        """A graceful shutdown for half the timeout, then the power is cut."""
        if not domain.isActive():
            return False
        try:
            domain.shutdown()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in STATE:
                raise
        deadline = time.monotonic() + self.timeout / 2
        pause = 0.05
        while domain.isActive() and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        if domain.isActive():
            domain.destroy()
        return True

    @translated("vm.restart")
    def restart_vm(self, *, key: str, vm_id: str) -> VmInfo:
        def reboot(domain: libvirt.virDomain, _meta: lx.VmMeta) -> bool:
            if not domain.isActive():
                domain.create()  # a cut-short reboot that left it off: bring it back
            else:
                domain.reboot(0)
            return True

        return self._keyed("vm.restart", key, vm_id, "", needs_running=True, act=reboot)

    @translated("vm.resize")
    def resize_vm(self, *, key: str, vm_id: str, vcpus: int, memory_mb: int) -> VmInfo:
        operation = "vm.resize"
        if vcpus < 1 or memory_mb < 64:
            raise InvalidRequest(self.name, operation, "a VM needs at least 1 vCPU and 64 MB")
        fp = lx.fingerprint(vcpus=vcpus, memory_mb=memory_mb)

        def resize(domain: libvirt.virDomain, meta: lx.VmMeta) -> bool:
            config = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            if lx.domain_size(config) == (vcpus, memory_mb * 1024):
                return False
            self._conn.defineXML(lx.resized_domain_xml(config, meta, vcpus=vcpus,
                                                       memory_mb=memory_mb))
            return True

        return self._keyed(operation, key, vm_id, fp, needs_running=False, act=resize)

    @translated("vm.delete")
    def delete_vm(self, *, key: str, vm_id: str) -> None:
        try:
            domain, meta = self._domain("vm.delete", vm_id)
        except NotFound:
            return
        self._remove_domain(domain, meta)

    def _remove_domain(self, domain: libvirt.virDomain, meta: lx.VmMeta) -> None:
        """Power off, drop its address, checkpoints and disk, then the domain itself (last:
        a delete cut short is found again by its domain and finished)."""
        if domain.isActive():
            domain.destroy()
        self._remove_dhcp_host(meta)
        for snapshot in domain.listAllSnapshots():
            try:
                snapshot.delete(0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                    raise
        pool = self._pool() if meta.volume else None
        if pool is not None:
            try:
                pool.storageVolLookupByName(meta.volume).delete(0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise
        try:
            domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                 | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in UNSUPPORTED | INVALID:
                raise
            domain.undefine()

    # -- checkpoints ---------------------------------------------------------------------------
    @translated("checkpoint.create")
    def create_checkpoint(self, *, key: str, vm_id: str, name: str) -> CheckpointInfo:
        domain, meta = self._domain("checkpoint.create", vm_id)
        snapshot_name = lx.snapshot_name(key)
        try:
            snapshot = domain.snapshotLookupByName(snapshot_name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                raise
            snapshot = domain.snapshotCreateXML(lx.snapshot_xml(snapshot_name, name), 0)
        info = self._checkpoint_info(meta.id, snapshot)
        if info.name != name:
            raise self._mismatch("checkpoint.create", key)
        return info

    @translated("checkpoint.restore")
    def restore_checkpoint(self, *, key: str, vm_id: str, checkpoint_id: str) -> VmInfo:
        operation = "checkpoint.restore"

        def revert(domain: libvirt.virDomain, meta: lx.VmMeta) -> bool:
            snapshot = domain.snapshotLookupByName(checkpoint_id)
            # A revert brings back the domain's configuration of then, Buffet's metadata
            # (the keys done since) included: the VM keeps today's size and records.
            config = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            domain.revertToSnapshot(snapshot, 0)
            if domain.isActive():  # a checkpoint of a running VM comes back running
                domain.destroy()
            self._conn.defineXML(lx.with_vm_meta(config, meta))
            return True

        domain, _meta = self._domain(operation, vm_id)
        domain.snapshotLookupByName(checkpoint_id)  # NotFound before anything else
        return self._keyed(operation, key, vm_id, lx.fingerprint(checkpoint=checkpoint_id),
                           needs_running=False, act=revert)

    @translated("checkpoint.delete")
    def delete_checkpoint(self, *, key: str, vm_id: str, checkpoint_id: str) -> None:
        try:
            domain, _meta = self._domain("checkpoint.delete", vm_id)
            domain.snapshotLookupByName(checkpoint_id).delete(0)
        except NotFound:
            return
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                raise

    # -- what libvirt has not --------------------------------------------------------------------
    def list_files(self, vm_id: str, checkpoint_id: str | None = None) -> list[GuestFile]:
        raise self._unsupported("file.list", "access to guest files")

    def read_file(self, vm_id: str, path: str) -> GuestFile:
        raise self._unsupported("file.read", "access to guest files")

    def write_file(self, *, key: str, vm_id: str, path: str, content: str) -> GuestFile:
        raise self._unsupported("file.write", "access to guest files")

    def restore_file(self, *, key: str, vm_id: str, checkpoint_id: str,
                     path: str) -> GuestFile:
        raise self._unsupported("file.restore", "access to guest files")

    def enable_replication(self, *, key: str, vm_id: str, target_endpoint: str,
                           target_container_id: str,
                           target_token: str | None = None) -> ReplicationInfo:
        raise self._unsupported("replication.enable", "replication")

    def sync_replication(self, *, key: str, vm_id: str) -> ReplicationInfo:
        raise self._unsupported("replication.sync", "replication")

    def failover_replication(self, *, key: str, vm_id: str, network_id: str | None = None,
                             ip_address: str | None = None) -> VmInfo:
        raise self._unsupported("replication.failover", "replication")

    def reverse_replication(self, *, key: str, vm_id: str, target_endpoint: str,
                            target_container_id: str,
                            target_token: str | None = None) -> ReplicationInfo:
        raise self._unsupported("replication.reverse", "replication")

    def disable_replication(self, *, key: str, vm_id: str, keep_replica: bool = False) -> None:
        return None  # nothing replicates: nothing to disable


# -- helpers ---------------------------------------------------------------------------------
def _affect(network: libvirt.virNetwork) -> int:
    flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
    if network.isActive():
        flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
    return flags
