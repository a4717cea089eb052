"""Reconciliation: what the portal believes is on a stamp against what the stamp has."""

from dataclasses import dataclass

from fabric.models import Stamp
from provisioning.models import AddressState, ExternalAddress, Site, SiteState

__all__ = ["Drift", "drift"]


@dataclass(frozen=True)
class Drift:
    kind: str  # "orphan" (on the stamp, unknown to the portal) or "missing"
    object: str
    detail: str

    def __str__(self):
        return f"{self.kind} {self.object}: {self.detail}"


def drift(stamp: Stamp) -> list[Drift]:
    """Every difference between the portal's sites and the stamp's inventory.

    Sites whose job is still running are left out: they are expected to differ.
    """
    from fabric.services import driver_for

    inventory = driver_for(stamp).inventory()
    sites = list(Site.objects.filter(cloud__stamp=stamp).exclude(state=SiteState.DELETED))
    settled = [s for s in sites if s.state in (SiteState.READY, SiteState.FAILED)]
    busy = {s.container_id for s in sites if s not in settled and s.container_id}
    found: list[Drift] = []

    known = {
        "container": {s.container_id for s in sites if s.container_id},
        "gateway": {s.gateway_id for s in sites if s.gateway_id},
        "NAT rule": {s.nat_rule_id for s in sites if s.nat_rule_id},
        "firewall rule": {s.firewall_rule_id for s in sites if s.firewall_rule_id},
    }
    present = {
        "container": {c.id: c.id for c in inventory.containers},
        "gateway": {g.id: g.container_id for g in inventory.gateways},
        "NAT rule": {r.id: r.container_id for r in inventory.nat_rules},
        "firewall rule": {r.id: r.container_id for r in inventory.firewall_rules},
    }
    for kind, objects in present.items():
        for object_id, container_id in objects.items():
            if object_id not in known[kind] and container_id not in busy:
                found.append(Drift("orphan", f"{kind} {object_id}", f"on {stamp.name}, "
                                   "unknown to the portal"))
    for site in settled:
        for kind, object_id in (("container", site.container_id),
                                ("gateway", site.gateway_id),
                                ("NAT rule", site.nat_rule_id),
                                ("firewall rule", site.firewall_rule_id)):
            if object_id and object_id not in present[kind]:
                found.append(Drift("missing", f"{kind} {object_id}",
                                   f"site of subscription {site.subscription_id}"))
    portal_addresses = set(ExternalAddress.objects.filter(
        cloud__stamp=stamp, state=AddressState.ALLOCATED).values_list("address", flat=True))
    fabric_addresses = {g.external_ip for g in inventory.gateways if g.container_id not in busy}
    for address in sorted(fabric_addresses - portal_addresses):
        if not ExternalAddress.objects.filter(cloud__stamp=stamp, address=address).exists():
            found.append(Drift("orphan", f"address {address}", "held on the fabric"))
    busy_addresses = {s.external_ip for s in sites if s not in settled and s.external_ip}
    for address in sorted(portal_addresses - fabric_addresses - busy_addresses):
        found.append(Drift("missing", f"address {address}", "allocated in the portal only"))
    return found
