"""Validation of request parameters; every failure is a 400 ``invalid``."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .errors import bad_request

__all__ = [
    "IPAddress",
    "IPNetwork",
    "address",
    "boolean",
    "choice",
    "integer",
    "network",
    "optional_text",
    "ports",
    "text",
    "traffic_endpoint",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_PORTS = re.compile(r"^\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*$")


def text(params: dict[str, Any], key: str, *, max_length: int = 200) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{key} is required and must be a non-empty string")
    if len(value) > max_length:
        raise bad_request(f"{key} is longer than {max_length} characters")
    return value.strip()


def optional_text(params: dict[str, Any], key: str, *, default: str | None = None) -> str | None:
    if params.get(key) is None:
        return default
    return text(params, key)


def integer(
    params: dict[str, Any],
    key: str,
    *,
    minimum: int = 1,
    maximum: int | None = None,
    default: int | None = None,
) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{key} is required and must be an integer")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = (
            f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        )
        raise bad_request(f"{key} must be {bounds}, got {value}")
    return value


def boolean(params: dict[str, Any], key: str, *, default: bool = False) -> bool:
    value = params.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "1", "yes", "false", "0", "no"}:
        return value.lower() in {"true", "1", "yes"}
    raise bad_request(f"{key} must be true or false")


def choice(
    params: dict[str, Any], key: str, choices: tuple[str, ...], *, default: str | None = None
) -> str:
    value = params.get(key, default)
    if value not in choices:
        raise bad_request(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def network(params: dict[str, Any], key: str) -> IPNetwork:
    value = text(params, key)
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise bad_request(f"{key} {value!r} is not a network in CIDR notation ({exc})") from None


def address(params: dict[str, Any], key: str) -> IPAddress:
    value = text(params, key)
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise bad_request(f"{key} {value!r} is not an IP address") from None


def traffic_endpoint(params: dict[str, Any], key: str) -> str:
    """``any``, an address or a network (host bits allowed), normalised."""
    value = text(params, key)
    if value.lower() == "any":
        return "any"
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise bad_request(f"{key} must be 'any', an IP address or a CIDR, got {value!r}") from None


def ports(params: dict[str, Any], key: str) -> str:
    """``any`` or a list of ports and ranges such as ``22,80-90,443``."""
    value = params.get(key, "any")
    if not isinstance(value, str) and not (isinstance(value, int) and not isinstance(value, bool)):
        raise bad_request(f"{key} must be 'any' or a port list such as '22,80-90'")
    value = str(value).replace(" ", "")
    if value.lower() == "any":
        return "any"
    if not _PORTS.match(value):
        raise bad_request(f"{key} must be 'any' or a port list such as '22,80-90', got {value!r}")
    for part in value.split(","):
        low, _, high = part.partition("-")
        lo, hi = int(low), int(high or low)
        if not 1 <= lo <= hi <= 65535:
            raise bad_request(f"{key}: {part!r} is not a port or an ascending range within 1-65535")
    return value
