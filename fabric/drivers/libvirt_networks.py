"""The libvirt driver's containers and networks (``LibvirtNetworking``, a part of
``LibvirtDriver``).

A tenant container is a naming scope: an inactive network that only holds its metadata.
A tenant network is a libvirt network in ``route``, ``nat`` or isolated mode. Gateways,
firewall and NAT rules are not libvirt's: their creates raise ``Unsupported`` and their
deletes find nothing to delete.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime

import libvirt

from . import libvirt_xml as lx
from .base import (
    Conflict,
    ConflictCode,
    ContainerInfo,
    GatewayInfo,
    InvalidRequest,
    NetworkInfo,
    NotFound,
)
from .libvirt_conn import UNSUPPORTED, translated

__all__ = ["LibvirtNetworking", "container_info", "network_info"]

_NETWORK_KINDS = ("routed", "nat", "isolated")


class LibvirtNetworking:
    """Containers and networks on the driver's connection; the driver gives ``name``,
    ``_conn``, the errors (``_mismatch``, ``_unsupported``) and its VMs (``_domains``,
    ``_remove_domain``), which a container's forced delete removes."""

    # -- lookups ------------------------------------------------------------------------
    def _networks(self) -> Iterator[tuple[libvirt.virNetwork, lx.NetworkMeta | lx.ContainerMeta]]:
        for network in self._conn.listAllNetworks():
            meta = lx.parse_network_meta(network.XMLDesc(0))
            if meta is not None:
                yield network, meta

    def _find_network(self, object_id: str) -> libvirt.virNetwork | None:
        try:
            return self._conn.networkLookupByUUIDString(object_id)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                return None
            raise
        except ValueError:
            return None

    def _container(self, operation: str, container_id: str) -> lx.ContainerMeta:
        network = self._find_network(container_id)
        meta = lx.parse_network_meta(network.XMLDesc(0)) if network is not None else None
        if not isinstance(meta, lx.ContainerMeta):
            raise NotFound(self.name, operation, f"no container {container_id!r}",
                           code="not-found")
        return meta

    def _network(self, operation: str, network_id: str) -> tuple[libvirt.virNetwork,
                                                                  lx.NetworkMeta]:
        network = self._find_network(network_id)
        meta = lx.parse_network_meta(network.XMLDesc(0)) if network is not None else None
        if network is None or not isinstance(meta, lx.NetworkMeta):
            raise NotFound(self.name, operation, f"no network {network_id!r}", code="not-found")
        return network, meta

    @translated("container.create")
    def create_container(self, *, key: str, name: str) -> ContainerInfo:
        container_id = lx.derived_id("container", key)
        network = self._find_network(container_id)
        if network is not None:
            meta = lx.parse_network_meta(network.XMLDesc(0))
            if not isinstance(meta, lx.ContainerMeta) or meta.name != name:
                raise self._mismatch("container.create", key)
            return container_info(meta)
        meta = lx.new_container_meta(container_id, name)
        self._conn.networkDefineXML(lx.container_xml(meta))  # defined only: no bridge
        return container_info(meta)

    @translated("container.delete")
    def delete_container(self, *, key: str, container_id: str, force: bool = False) -> None:
        try:
            self._container("container.delete", container_id)
        except NotFound:
            return
        vms = [(d, m) for d, m in self._domains() if m.container_id == container_id]
        networks = [(n, m) for n, m in self._networks()
                    if isinstance(m, lx.NetworkMeta) and m.container_id == container_id]
        if (vms or networks) and not force:
            raise Conflict(self.name, "container.delete",
                           f"container {container_id!r} still holds {len(vms)} VM(s) and "
                           f"{len(networks)} network(s); delete them first or pass force=true",
                           code=ConflictCode.IN_USE)
        for domain, meta in vms:
            self._remove_domain(domain, meta)
        for network, _meta in networks:
            _remove_network(network)
        marker = self._find_network(container_id)
        if marker is not None:
            marker.undefine()

    def create_gateway(self, *, key: str, container_id: str, external_ip: str,
                       name: str = "edge") -> GatewayInfo:
        raise self._unsupported("gateway.create", "edge gateways")

    def delete_gateway(self, *, key: str, gateway_id: str) -> None:
        return None  # there are none: nothing to delete

    @translated("network.create")
    def create_network(self, *, key: str, container_id: str, name: str, cidr: str,
                       kind: str = "routed") -> NetworkInfo:
        operation = "network.create"
        network_id = lx.derived_id("network", key)
        fp = lx.fingerprint(container_id=container_id, name=name, cidr=cidr, kind=kind)
        existing = self._find_network(network_id)
        if existing is not None:
            meta = lx.parse_network_meta(existing.XMLDesc(0))
            if not isinstance(meta, lx.NetworkMeta) or meta.fp != fp:
                raise self._mismatch(operation, key)
            if not existing.isActive():  # defined by an interrupted try: start it now
                existing.create()
            return network_info(meta)
        self._container(operation, container_id)
        if kind not in _NETWORK_KINDS:
            raise InvalidRequest(self.name, operation,
                                 f"kind must be one of {', '.join(_NETWORK_KINDS)}")
        try:
            network = ipaddress.ip_network(cidr)
        except ValueError:
            raise InvalidRequest(self.name, operation, f"{cidr!r} is not a network") from None
        if network.version != 4 or network.num_addresses < 4:
            raise InvalidRequest(self.name, operation,
                                 f"cidr {cidr} must be IPv4 with a gateway and a host")
        for _other, other in self._networks():
            if (isinstance(other, lx.NetworkMeta) and other.container_id == container_id
                    and network.overlaps(ipaddress.ip_network(other.cidr))):
                raise Conflict(self.name, operation,
                               f"{cidr} overlaps network {other.id!r} ({other.cidr})",
                               code=ConflictCode.CIDR_OVERLAP)
        meta = lx.NetworkMeta(id=network_id, container_id=container_id, name=name,
                              cidr=str(network), kind=kind, fp=fp)
        created = self._conn.networkDefineXML(lx.network_xml(meta))
        created.create()
        try:
            created.setAutostart(1)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in UNSUPPORTED:
                raise
        return network_info(meta)

    @translated("network.delete")
    def delete_network(self, *, key: str, network_id: str) -> None:
        try:
            network, _meta = self._network("network.delete", network_id)
        except NotFound:
            return
        attached = [m for _d, m in self._domains() if m.network_id == network_id]
        if attached:
            raise Conflict(self.name, "network.delete",
                           f"network {network_id!r} still has {len(attached)} VM(s) attached",
                           code=ConflictCode.IN_USE)
        _remove_network(network)

    def add_nat_rule(self, *, key: str, container_id: str, internal_cidr: str,
                     external_ip: str) -> str:
        raise self._unsupported("nat.create", "NAT rules (use a network of kind nat)")

    def delete_nat_rule(self, *, key: str, rule_id: str) -> None:
        return None

    def add_firewall_rule(self, *, key: str, container_id: str, direction: str, action: str,
                          source: str, destination: str, ports: str = "any") -> str:
        raise self._unsupported("firewall.create", "firewall rules")

    def delete_firewall_rule(self, *, key: str, rule_id: str) -> None:
        return None


# -- helpers ---------------------------------------------------------------------------------
def _remove_network(network: libvirt.virNetwork) -> None:
    if network.isActive():
        network.destroy()
    network.undefine()


def container_info(meta: lx.ContainerMeta) -> ContainerInfo:
    created = datetime.fromisoformat(meta.created_at) if meta.created_at else datetime.now(UTC)
    return ContainerInfo(id=meta.id, name=meta.name, created_at=created)


def network_info(meta: lx.NetworkMeta) -> NetworkInfo:
    cidr = ipaddress.ip_network(meta.cidr)
    return NetworkInfo(id=meta.id, container_id=meta.container_id, name=meta.name,
                       cidr=meta.cidr, gateway_address=str(next(cidr.hosts())), kind=meta.kind)

