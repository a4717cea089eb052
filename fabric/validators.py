"""The rules of the provider's input: names, networks, endpoints.

The models declare them (field validators, ``clean``) and ``fabric.services`` ends every
save in ``full_clean``, so the admin API and the provider's forms refuse the same input
with the same message. They guard the tenants: a cloud whose default network is not a
network fails every commission on it (the "The API a client can trust" issue).
"""

import ipaddress
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator

__all__ = [
    "AMOUNT",
    "ipv4_network",
    "validate_endpoint",
    "validate_external_pool",
    "validate_http_url",
    "validate_network_names",
    "validate_printable",
    "validate_tenant_network",
]

# An amount of capacity or a template's minimum: at least 1, and at most what an integer
# column holds on every database (SQLite would store more, PostgreSQL refuse it).
AMOUNT = [MinValueValidator(1), MaxValueValidator(2**31 - 1)]

# Ranges no tenant network or external address can come from: "this network", loopback,
# link-local, multicast, and the reserved block with the broadcast address.
_UNUSABLE = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4"))
# The sizes of a tenant network (as ``provisioning.resources`` allows for the tenants' own).
TENANT_NETWORK_PREFIXES = (16, 29)
# An external pool holds the provider's router and at least one address for a tenant.
LONGEST_POOL_PREFIX = 31

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")
_URI_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*://.*")


def _character(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def validate_printable(value: Any) -> None:
    """Text that reads the same everywhere: no control or invisible characters, no line
    breaks, no spaces at either end. (Blank values are refused by the field itself.)"""
    if not isinstance(value, str):
        raise ValidationError("Enter text.", code="printable")
    bad = next((c for c in value if not c.isprintable()), None)
    if bad is not None:
        raise ValidationError(
            f"Contains a character that cannot be shown ({_character(bad)}): use letters, "
            "digits, punctuation and spaces.", code="printable")
    if value != value.strip():
        raise ValidationError("Remove the spaces at the start and the end.", code="printable")


def validate_network_names(value: Any) -> None:
    """A list of distinct network names (a cloud's provider networks)."""
    if not isinstance(value, list):
        raise ValidationError('Enter a list of network names, e.g. ["external"].',
                              code="network_names")
    seen: set[str] = set()
    for name in value:
        if not isinstance(name, str) or not name:
            raise ValidationError("Each network name is a non-empty text.",
                                  code="network_names")
        try:
            validate_printable(name)
        except ValidationError as exc:
            raise ValidationError(f"{name!r}: {exc.messages[0]}", code="network_names") from None
        if len(name) > 63:
            raise ValidationError(f"'{name[:20]}…' is longer than 63 characters.",
                                  code="network_names")
        if name in seen:
            raise ValidationError(f"'{name}' is listed twice.", code="network_names")
        seen.add(name)


def ipv4_network(value: Any) -> ipaddress.IPv4Network:
    """``value`` as a strict IPv4 network written the canonical way (``10.0.0.0/24``)."""
    example = "Enter a network in CIDR notation, e.g. 10.0.0.0/24."
    if not isinstance(value, str):
        raise ValidationError(example, code="cidr")
    if "/" not in value:
        raise ValidationError(f"Add the prefix length. {example}", code="cidr")
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValidationError(f"Not a network. {example}", code="cidr") from None
        raise ValidationError(f"Host bits are set: the network is {loose}.",
                              code="cidr") from None
    if network.version != 4:
        raise ValidationError("Use an IPv4 network: the fabric's tenant networks, gateways "
                              "and NAT are IPv4.", code="cidr")
    if str(network) != value:
        raise ValidationError(f"Write it as {network}.", code="cidr")
    unusable = next((r for r in _UNUSABLE if network.overlaps(r)), None)
    if unusable is not None:
        raise ValidationError(f"Overlaps {unusable}, which no network can use.", code="cidr")
    return network


def validate_tenant_network(value: Any) -> None:
    """A network a tenant's VMs sit on: a private IPv4 range of /16 to /29."""
    network = ipv4_network(value)
    if not network.is_private:
        raise ValidationError("Use a private IPv4 range such as 10.0.0.0/24.", code="cidr")
    shortest, longest = TENANT_NETWORK_PREFIXES
    if not shortest <= network.prefixlen <= longest:
        raise ValidationError(f"Use a prefix between /{shortest} and /{longest}.",
                              code="cidr")


def validate_external_pool(value: Any) -> None:
    """A cloud's external addresses: the first is the provider's router, the others go to
    the subscriptions' source NAT."""
    network = ipv4_network(value)
    if network.prefixlen > LONGEST_POOL_PREFIX:
        raise ValidationError(
            "A pool holds the router's address and at least one more: use a prefix of "
            f"/{LONGEST_POOL_PREFIX} or shorter.", code="cidr")


def validate_http_url(value: Any) -> None:
    """An ``http://`` or ``https://`` URL of a host (and port, and path) the portal can
    call: no spaces, no credentials, no query."""
    example = "Enter an http:// or https:// URL, e.g. http://10.0.0.5:8101."
    if not isinstance(value, str) or not value.isascii() or any(
            c.isspace() or not c.isprintable() for c in value):
        raise ValidationError(f"{example} It has no spaces or non-ASCII characters.",
                              code="url")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValidationError(f"The host or the port is malformed. {example}",
                              code="url") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(example, code="url")
    if "@" in parts.netloc:
        raise ValidationError("Put credentials in the credentials field, not in the URL.",
                              code="url")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValidationError("The URL takes no query or fragment.", code="url")
    if port == 0 or parts.netloc.endswith(":"):
        raise ValidationError("The port is a number from 1 to 65535.", code="url")
    host = parts.hostname or ""
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValidationError(f"'{host}' is not an IPv6 address.", code="url") from None
    elif not _is_ipv4(host) and (not _HOSTNAME.fullmatch(host)
                                 or host.rstrip(".").rsplit(".", 1)[-1].isdigit()):
        raise ValidationError(f"'{host}' is not a host name or an IP address.", code="url")
    try:
        httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValidationError(f"Not a valid URL ({exc}).", code="url") from None


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def validate_endpoint(driver: str, value: Any) -> None:
    """The endpoint of a stamp, as its driver takes it: an http(s) URL for stampsim, a
    libvirt URI for libvirt, the name of an in-process stamp for the memory driver."""
    if not isinstance(value, str) or any(c.isspace() or not c.isprintable() for c in value):
        raise ValidationError("An endpoint has no spaces or control characters.", code="uri")
    if driver == "simulated":
        validate_http_url(value)
    elif driver == "libvirt" and not _URI_SCHEME.fullmatch(value):
        raise ValidationError("Enter a libvirt URI, e.g. qemu+ssh://root@10.0.0.5/system.",
                              code="uri")
