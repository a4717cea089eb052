"""Addresses of the clouds' external pools.

The first host of a pool is the provider's router. An address is free when the portal
has not allocated it and the fabric does not hold it; addresses the fabric reports as
taken are recorded so they are skipped from then on (reconciliation).
"""

import ipaddress

from django.db import IntegrityError, transaction

from base.errors import Conflict, ErrorCode
from fabric.models import Cloud
from provisioning.models import AddressState, ExternalAddress, Site

__all__ = ["allocate_external", "first_host", "release_external"]


def first_host(cidr: str) -> str | None:
    """The gateway of a routed network: its first host (None for what is not a network,
    which its create job then reports)."""
    try:
        return str(next(ipaddress.ip_network(cidr, strict=False).hosts()))
    except (ValueError, StopIteration):
        return None


def allocate_external(site: Site, *, held_by_fabric: set[str]) -> str:
    """The site's external address: the one it already has, or the next free one."""
    existing = ExternalAddress.objects.filter(site=site, state=AddressState.ALLOCATED).first()
    if existing is not None and existing.address not in held_by_fabric:
        return existing.address
    if existing is not None:
        # Reserved before the fabric was asked, and the fabric holds it: skip it for good.
        existing.state, existing.site = AddressState.HELD_BY_FABRIC, None
        existing.save(update_fields=["state", "site"])
    cloud: Cloud = site.cloud
    known = dict(ExternalAddress.objects.filter(cloud=cloud).values_list("address", "state"))
    for address in held_by_fabric - set(known):
        ExternalAddress.objects.get_or_create(cloud=cloud, address=address,
                                              defaults={"state": AddressState.HELD_BY_FABRIC})
    taken = set(known) | held_by_fabric
    hosts = ipaddress.ip_network(cloud.external_pool_cidr, strict=False).hosts()
    next(hosts, None)  # the router
    for host in hosts:
        address = str(host)
        if address in taken:
            continue
        try:
            with transaction.atomic():
                ExternalAddress.objects.create(cloud=cloud, address=address, site=site)
        except IntegrityError:
            continue  # allocated concurrently by another job: try the next one
        return address
    raise Conflict(f"The external address pool {cloud.external_pool_cidr} of cloud "
                   f"'{cloud.name}' is exhausted.", code=ErrorCode.POOL_EXHAUSTED)


def release_external(site: Site) -> None:
    ExternalAddress.objects.filter(site=site, state=AddressState.ALLOCATED).delete()
