"""The XML the libvirt driver writes and reads: domains, networks, volumes, snapshots,
and the ``<metadata>`` in Buffet's namespace that makes every call idempotent.

Nothing here talks to libvirt, so it can be read (and tested) without the binding.

What the metadata holds, on the libvirt objects themselves (the host is the source
of truth, whichever worker asks):

* a domain: ``<vm>`` with its container (whose name carries the subscription), the
  VM's name, image, disk, network and address, the hash of the spec it was created
  with, and the last operations by key (``<op key name fp done>``, newest last);
* a network: ``<network>`` with its container, name, kind, the key that made it;
* a container: ``<container>`` on an inactive, address-less network that only marks
  the scope (libvirt has no folder object; such a network creates no bridge).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import defusedxml.ElementTree as defused

__all__ = [
    "CONTAINER_PREFIX",
    "NETWORK_PREFIX",
    "NS",
    "VM_PREFIX",
    "ContainerMeta",
    "NetworkMeta",
    "Op",
    "VmMeta",
    "container_xml",
    "derived_id",
    "domain_size",
    "dhcp_hosts",
    "domain_xml",
    "fingerprint",
    "mac_for",
    "network_xml",
    "new_container_meta",
    "now",
    "parse_network_meta",
    "parse_vm_meta",
    "resized_domain_xml",
    "snapshot_fields",
    "snapshot_name",
    "snapshot_xml",
    "volume_xml",
    "with_vm_meta",
]

NS = "https://buffet.invalid/xmlns/libvirt/1"
PREFIX = "buffet"
VM_PREFIX = "buffet-vm-"
NETWORK_PREFIX = "buffet-net-"
CONTAINER_PREFIX = "buffet-ct-"
OPS_KEPT = 32  # keys remembered per VM: far more than a runbook retries one step
_ID_SPACE = uuid.UUID("0d7b6c1e-3f6a-5b8e-9c1d-2a4e6f8b0c3d")
_SAFE_NAME = re.compile(r"[A-Za-z0-9._:~-]{1,100}")

ET.register_namespace(PREFIX, NS)
# What libvirt answers is parsed without entities or external references.
_parse = defused.fromstring


def derived_id(kind: str, key: str) -> str:
    """The UUID an object made by ``key`` gets: a retried call finds it again."""
    return str(uuid.uuid5(_ID_SPACE, f"{kind}:{key}"))


def fingerprint(**call: Any) -> str:
    """A short hash of a call's arguments: the same key with other arguments is a mismatch."""
    return hashlib.sha256(json.dumps(call, sort_keys=True).encode()).hexdigest()[:16]


def mac_for(vm_id: str) -> str:
    """A stable MAC in the locally administered range QEMU uses (52:54:00)."""
    tail = uuid.UUID(vm_id).bytes[:3]
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


def snapshot_name(key: str) -> str:
    """A checkpoint is the snapshot named after its key (hashed if libvirt would mind it)."""
    if _SAFE_NAME.fullmatch(key):
        return key
    return "k-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _text(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


# -- metadata ------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    key: str
    name: str
    fp: str
    done: bool


@dataclass(frozen=True)
class VmMeta:
    id: str
    container_id: str
    container_name: str
    name: str
    image: str
    disk_gb: int
    network_id: str | None
    ip_address: str | None
    spec: str
    volume: str
    created_at: str
    ops: tuple[Op, ...] = field(default=())

    def op(self, key: str) -> Op | None:
        return next((op for op in self.ops if op.key == key), None)

    def with_op(self, op: Op) -> VmMeta:
        """Record ``op`` as the newest (replacing an earlier record of its key)."""
        kept = tuple(o for o in self.ops if o.key != op.key) + (op,)
        return replace(self, ops=kept[-OPS_KEPT:])

    def to_xml(self) -> str:
        attrs = {
            "id": self.id, "container": self.container_id,
            "container-name": self.container_name, "name": self.name, "image": self.image,
            "disk-gb": str(self.disk_gb), "network": self.network_id or "",
            "ip": self.ip_address or "", "spec": self.spec, "volume": self.volume,
            "created": self.created_at,
        }
        ops = "".join(
            f'<op key="{_text(o.key)}" name="{_text(o.name)}" fp="{o.fp}" '
            f'done="{int(o.done)}"/>' for o in self.ops)
        return f"<vm {_attrs(attrs)}>{ops}</vm>"

    @classmethod
    def parse(cls, text: str) -> VmMeta:
        return cls.from_element(_parse(text))

    @classmethod
    def from_element(cls, root: ET.Element) -> VmMeta:
        a = root.attrib
        return cls(
            id=a["id"], container_id=a["container"], container_name=a.get("container-name", ""),
            name=a["name"], image=a.get("image", ""), disk_gb=int(a.get("disk-gb", "0")),
            network_id=a.get("network") or None, ip_address=a.get("ip") or None,
            spec=a.get("spec", ""), volume=a.get("volume", ""), created_at=a.get("created", ""),
            ops=tuple(Op(key=o.attrib["key"], name=o.attrib["name"], fp=o.attrib["fp"],
                         done=o.attrib.get("done") == "1")
                     for o in root if _local(o.tag) == "op"),
        )


@dataclass(frozen=True)
class NetworkMeta:
    id: str
    container_id: str
    name: str
    cidr: str
    kind: str
    fp: str


@dataclass(frozen=True)
class ContainerMeta:
    id: str
    name: str
    created_at: str


def _attrs(attrs: dict[str, str]) -> str:
    return " ".join(f'{k}="{_text(v)}"' for k, v in attrs.items())


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _metadata(element: str) -> str:
    """``element`` (written without a namespace) as a ``<metadata>`` child in ours."""
    node = _parse(element)
    for each in node.iter():
        each.tag = f"{{{NS}}}{each.tag}"
    return f"<metadata>{ET.tostring(node, encoding='unicode')}</metadata>"


def _ours(root: ET.Element, tag: str) -> ET.Element | None:
    metadata = root.find("metadata")
    if metadata is None:
        return None
    return metadata.find(f"{{{NS}}}{tag}")


def parse_network_meta(network_xml_text: str) -> NetworkMeta | ContainerMeta | None:
    """Buffet's metadata of a libvirt network, or None for a network Buffet did not make."""
    root = _parse(network_xml_text)
    if (node := _ours(root, "network")) is not None:
        a = node.attrib
        return NetworkMeta(id=a["id"], container_id=a["container"], name=a["name"],
                           cidr=a["cidr"], kind=a["kind"], fp=a.get("fp", ""))
    if (node := _ours(root, "container")) is not None:
        a = node.attrib
        return ContainerMeta(id=a["id"], name=a["name"], created_at=a.get("created", ""))
    return None


def parse_vm_meta(domain_xml_text: str) -> VmMeta | None:
    """Buffet's metadata of a domain, or None for a domain Buffet did not make."""
    node = _ours(_parse(domain_xml_text), "vm")
    return None if node is None else VmMeta.from_element(node)


def dhcp_hosts(network_xml_text: str) -> list[tuple[str, str]]:
    """The ``(mac, ip)`` DHCP host entries of a network."""
    root = _parse(network_xml_text)
    return [(h.get("mac", ""), h.get("ip", "")) for h in root.iter("host")]


# -- documents -----------------------------------------------------------------------
def container_xml(meta: ContainerMeta) -> str:
    attrs = {"id": meta.id, "name": meta.name, "created": meta.created_at}
    return (f"<network><name>{CONTAINER_PREFIX}{meta.id}</name><uuid>{meta.id}</uuid>"
            f"{_metadata(f'<container {_attrs(attrs)}/>')}</network>")


_FORWARD = {"routed": "<forward mode='route'/>", "nat": "<forward mode='nat'/>",
            "isolated": ""}


def network_xml(meta: NetworkMeta) -> str:
    cidr = ipaddress.ip_network(meta.cidr)
    gateway = next(cidr.hosts())
    attrs = {"id": meta.id, "container": meta.container_id, "name": meta.name,
             "cidr": meta.cidr, "kind": meta.kind, "fp": meta.fp}
    return (f"<network><name>{NETWORK_PREFIX}{meta.id}</name><uuid>{meta.id}</uuid>"
            f"{_metadata(f'<network {_attrs(attrs)}/>')}{_FORWARD[meta.kind]}"
            f"<ip address='{gateway}' prefix='{cidr.prefixlen}'><dhcp/></ip></network>")


def volume_xml(name: str, disk_gb: int, backing: str | None) -> str:
    backing_xml = (f"<backingStore><path>{_text(backing)}</path><format type='qcow2'/>"
                   "</backingStore>") if backing else ""
    return (f"<volume><name>{_text(name)}</name><capacity unit='GiB'>{disk_gb}</capacity>"
            f"<target><format type='qcow2'/></target>{backing_xml}</volume>")


def domain_xml(meta: VmMeta, *, domain_type: str, vcpus: int, memory_mb: int,
               disk_path: str | None, network_name: str | None) -> str:
    disk = (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
            f"<source file='{_text(disk_path)}'/><target dev='vda' bus='virtio'/></disk>"
            if disk_path else "")
    nic = (f"<interface type='network'><mac address='{mac_for(meta.id)}'/>"
           f"<source network='{network_name}'/><model type='virtio'/></interface>"
           if network_name else "")
    return (f"<domain type='{domain_type}'><name>{VM_PREFIX}{meta.id}</name>"
            f"<uuid>{meta.id}</uuid><title>{_text(meta.name)}</title>"
            f"{_metadata(meta.to_xml())}"
            f"<memory unit='MiB'>{memory_mb}</memory>"
            f"<currentMemory unit='MiB'>{memory_mb}</currentMemory>"
            f"<vcpu>{vcpus}</vcpu><os><type>hvm</type></os>"
            f"<devices>{disk}{nic}</devices></domain>")


def _set_metadata(root: ET.Element, meta: VmMeta) -> None:
    metadata = root.find("metadata")
    if metadata is None:
        metadata = ET.SubElement(root, "metadata")
    for old in metadata.findall(f"{{{NS}}}vm"):
        metadata.remove(old)
    metadata.append(_parse(_metadata(meta.to_xml()))[0])



def with_vm_meta(domain_xml_text: str, meta: VmMeta) -> str:
    """A domain's (inactive) XML carrying ``meta`` instead of what it had."""
    root = _parse(domain_xml_text)
    _set_metadata(root, meta)
    return ET.tostring(root, encoding="unicode")


def resized_domain_xml(domain_xml_text: str, meta: VmMeta, *, vcpus: int,
                       memory_mb: int) -> str:
    """A stopped domain's XML with new vCPUs and memory (and ``meta``): redefining it is
    one atomic change of the persistent configuration."""
    root = _parse(domain_xml_text)
    for tag in ("memory", "currentMemory"):
        node = root.find(tag)
        if node is None:
            node = ET.SubElement(root, tag)
        node.text, node.attrib = str(memory_mb * 1024), {"unit": "KiB"}
    vcpu = root.find("vcpu")
    if vcpu is None:
        vcpu = ET.SubElement(root, "vcpu")
    vcpu.text = str(vcpus)
    vcpu.attrib.pop("current", None)
    _set_metadata(root, meta)
    return ET.tostring(root, encoding="unicode")


def snapshot_xml(name: str, description: str) -> str:
    return (f"<domainsnapshot><name>{_text(name)}</name>"
            f"<description>{_text(description)}</description></domainsnapshot>")


def domain_size(domain_xml_text: str) -> tuple[int, int]:
    """``(vcpus, memory KiB)`` of a domain's XML."""
    root = _parse(domain_xml_text)
    memory = root.find("currentMemory")
    if memory is None:
        memory = root.find("memory")
    unit = (memory.get("unit") or "KiB") if memory is not None else "KiB"
    amount = int(memory.text or 0) if memory is not None else 0
    kib = {"KiB": 1, "k": 1, "MiB": 1024, "M": 1024, "GiB": 1024**2, "G": 1024**2,
           "b": 1 / 1024, "bytes": 1 / 1024}.get(unit, 1)
    vcpu = root.find("vcpu")
    vcpus = int(vcpu.get("current") or vcpu.text or 1) if vcpu is not None else 1
    return vcpus, int(amount * kib)


def snapshot_fields(snapshot_xml_text: str) -> tuple[str, datetime]:
    root = _parse(snapshot_xml_text)
    created = int(root.findtext("creationTime") or 0)
    return root.findtext("description") or "", datetime.fromtimestamp(created, UTC)



def new_container_meta(container_id: str, name: str) -> ContainerMeta:
    return ContainerMeta(id=container_id, name=name, created_at=_now())


def now() -> str:
    return _now()
