"""Who sent a request: the client IP (X-Forwarded-For only via trusted proxies) and agent."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


# Parsing addresses with `ipaddress` costs microseconds; proxies and visitors repeat.
@lru_cache(maxsize=16384)
def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


@lru_cache(maxsize=16384)
def _public(text: str) -> str | None:
    """The address, normalised, when it is a valid public one (`is_global` alone walks a
    dozen reserved networks)."""
    address = _address(text)
    return str(address) if address is not None and address.is_global else None


@lru_cache(maxsize=1024)
def _is_trusted(text: str, trusted: tuple[Network, ...]) -> bool:
    address = _address(text)
    return address is not None and any(address in net for net in trusted)


def client_ip(remote_addr: str, forwarded_for: str, trusted: tuple[Network, ...]) -> str:
    """The address that reached us, or, behind a trusted proxy, the one it forwarded for.

    X-Forwarded-For is read right to left, skipping our own proxies; the first other
    address is the client, believed only if it is a valid public address.
    """
    if not forwarded_for or not trusted or not _is_trusted(remote_addr, trusted):
        return remote_addr
    for hop in reversed(forwarded_for.split(",")):
        if _is_trusted(hop, trusted):
            continue
        return _public(hop) or remote_addr
    return remote_addr
