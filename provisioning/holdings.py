"""What a VM, network or checkpoint holds while it lives: its share of the quota ledger
(and of the cloud's capacity), and a VM its address on its network. Taken by the
services when a resource is asked for, given back exactly once by the runbooks when it
is gone (``quota_held`` says whether it holds it now), taken again by a retried create.
"""

import ipaddress
import itertools
import socket
import uuid
from collections.abc import Iterable, Iterator

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from base import prepared
from base.errors import Conflict, ErrorCode
from plans import quota
from provisioning.models import Network, NetworkAddress, VirtualMachine

__all__ = ["allocate_address", "claim_address", "claim_free_address", "free_addresses",
           "give_back", "network_full", "take_back"]


def allocate_address(network: Network, vm: VirtualMachine, prefer: str | None = None) -> str:
    """The next free host of the network (its first host is the gateway)."""
    return claim_address(network, vm, free_addresses(network, prefer))


def claim_free_address(network: Network, vm: VirtualMachine) -> str:
    """The network's first host that no other VM holds or is claiming, now ``vm``'s: on
    PostgreSQL in one statement, which never waits (see ``_claim_on_postgresql``).

    ``vm`` may be unsaved: its row must be written in the same transaction (the foreign
    key is checked at commit)."""
    if connection.vendor == "postgresql":
        address = _claim_first_on_postgresql(network, vm)
        if address is not None:
            return address
    return claim_address(network, vm, free_addresses(network))


# How many free hosts the one-statement claim looks at: room for this many creates
# claiming in the network at the same moment.
_CLAIM_WINDOW = 64


def _claim_first_on_postgresql(network: Network, vm: VirtualMachine) -> str | None:
    """The first free host, or None when every host of the window is held or being
    claimed (the caller then reads what is free).

    The inner query lists the first ``_CLAIM_WINDOW`` free hosts in host order: those
    before the first held one, then those after each held one that the next held one
    does not follow (``lead`` over the network's addresses in the order of their index,
    read only as far as the free hosts it needs: to the first hole, or the end when
    there is none); the outer one takes the first whose advisory lock it gets."""
    table = NetworkAddress._meta.db_table
    cidr = ipaddress.ip_network(network.cidr)
    hosts = cidr.num_addresses - 2
    with connection.cursor() as cursor:
        prepared.execute(
            cursor,
            f"INSERT INTO {table} (network_id, address, vm_id, allocated_at) "  # noqa: S608
            "SELECT %(network)s, free.address, %(vm)s, %(now)s FROM ("
            "  SELECT %(base)s::inet + n AS address FROM generate_series(1, LEAST("
            f"   %(window)s, COALESCE((SELECT min(address) FROM {table}"
            "    WHERE network_id = %(network)s) - %(base)s::inet - 1, %(hosts)s))) AS n"
            "  UNION ALL"
            "  SELECT gap.address + n FROM (SELECT * FROM ("
            "    SELECT address, lead(address) OVER (ORDER BY address) AS next"
            f"   FROM {table} WHERE network_id = %(network)s) AS held"
            "   WHERE held.next IS NULL OR held.next - held.address > 1) AS gap,"
            "   generate_series(1, LEAST(%(window)s, COALESCE(gap.next, %(last)s::inet + 1)"
            "    - gap.address - 1)) AS n"
            "  LIMIT %(window)s) AS free "
            "WHERE free.address <> %(gateway)s::inet AND pg_try_advisory_xact_lock(%(key)s,"
            "  (free.address - '0.0.0.0'::inet - 2147483648)::int) "
            "LIMIT 1 ON CONFLICT DO NOTHING RETURNING host(address)",
            {"network": network.pk, "vm": vm.pk, "now": timezone.now(),
             "base": str(cidr.network_address), "hosts": hosts, "window": _CLAIM_WINDOW,
             "last": str(cidr.network_address + hosts),
             "gateway": network.gateway_address, "key": _lock_key(network)})
        row = cursor.fetchone()
    return row[0] if row is not None else None


def _lock_key(network: Network) -> int:
    """The first key of the advisory locks of the network's addresses (the second is the
    address, less 2**31)."""
    return uuid.UUID(str(network.pk)).int & 0x7FFFFFFF


def free_addresses(network: Network, prefer: str | None = None) -> Iterator[str]:
    """The network's hosts no VM holds, ``prefer`` first, as they were when the first one
    was asked for (one query then).

    This is how a claim finds its address where the one-statement claim is not (SQLite),
    under the database's write lock: it reads every address held, so it is written for
    speed (the column alone, without model rows; the hosts as text from their numbers).
    """
    table = NetworkAddress._meta.db_table
    key = NetworkAddress._meta.get_field("network").get_db_prep_value(network.pk, connection)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT address FROM {table} WHERE network_id = %s",  # noqa: S608
                       [key])
        taken = {address for (address,) in cursor.fetchall()}
    taken.add(network.gateway_address)
    hosts = _hosts(ipaddress.ip_network(network.cidr))
    return (address for address in itertools.chain([prefer] if prefer else [], hosts)
            if address not in taken)


def _hosts(cidr: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Iterator[str]:
    """``str(h) for h in cidr.hosts()``, three times as fast for IPv4 (no address object
    a host)."""
    if cidr.version != 4 or cidr.prefixlen > 30:  # /31 and /32: every address a host
        return (str(host) for host in cidr.hosts())
    base = int(cidr.network_address)
    return (socket.inet_ntoa((base + n).to_bytes(4, "big"))
            for n in range(1, cidr.num_addresses - 1))


def claim_address(network: Network, vm: VirtualMachine, candidates: Iterable[str]) -> str:
    """The first of ``candidates`` that no other VM holds or is claiming, now ``vm``'s."""
    claim = _claim_on_postgresql if connection.vendor == "postgresql" else _claim
    for address in candidates:
        if claim(network, vm, address):
            return address
    raise network_full(network)


def _claim(network: Network, vm: VirtualMachine, address: str) -> bool:
    try:
        with transaction.atomic():
            NetworkAddress.objects.create(network=network, address=address, vm=vm)
    except IntegrityError:
        return False  # taken concurrently
    return True


def _claim_on_postgresql(network: Network, vm: VirtualMachine, address: str) -> bool:
    """One statement, which never waits: an address another transaction is claiming (its
    advisory lock, held to its end) is skipped, where an INSERT would wait for that
    transaction's end to learn whether the address is free, and creates in one network
    would queue behind each other."""
    table = NetworkAddress._meta.db_table
    lock = (_lock_key(network), int(ipaddress.ip_address(address)) - 2**31)
    with connection.cursor() as cursor:
        prepared.execute(
            cursor,
            f"INSERT INTO {table} (network_id, address, vm_id, allocated_at) "  # noqa: S608
            "SELECT %s, %s, %s, %s WHERE pg_try_advisory_xact_lock(%s, %s) "
            "ON CONFLICT DO NOTHING RETURNING address",
            [network.pk, address, vm.pk, timezone.now(), *lock])
        return cursor.fetchone() is not None


def network_full(network: Network) -> Conflict:
    return Conflict(f"Network '{network.name}' ({network.cidr}) has no free address.",
                    code=ErrorCode.NETWORK_FULL)


def give_back(obj, *, locked: bool = False) -> None:
    """Release what a VM, network or checkpoint holds in the ledger, once. ``locked``:
    ``obj`` is its row as read under lock in this transaction (a VM with its subscription
    and plan), not read again."""
    model = type(obj)
    row = obj if locked else model.objects.select_for_update().get(pk=obj.pk)
    if not row.quota_held:
        return
    if isinstance(row, VirtualMachine):
        quota.release(row.subscription, row.usage(), cloud_id=row.subscription.plan.cloud_id)
        NetworkAddress.objects.filter(vm=row).delete()
    elif isinstance(row, Network):
        quota.release(row.subscription, {"networks": 1})
    else:
        quota.release(row.vm.subscription, {"snapshots": 1})
    model.objects.filter(pk=row.pk).update(quota_held=False)
    obj.quota_held = False


def take_back(obj) -> None:
    """Reserve again what ``give_back`` released (a retried create)."""
    row = type(obj).objects.select_for_update().get(pk=obj.pk)
    if row.quota_held:
        return
    if isinstance(row, VirtualMachine):
        quota.reserve(row.subscription, row.usage(), cloud_id=row.subscription.plan.cloud_id)
        allocate_address(row.network, row, prefer=row.ip_address)
    elif isinstance(row, Network):
        quota.reserve(row.subscription, {"networks": 1})
    else:
        quota.reserve(row.vm.subscription, {"snapshots": 1})
    type(row).objects.filter(pk=row.pk).update(quota_held=True)
