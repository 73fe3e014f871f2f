"""Who sent a request: the client IP (X-Forwarded-For only via trusted proxies) and agent."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_ip(remote_addr: str, forwarded_for: str, trusted: tuple[Network, ...]) -> str:
    """The address that reached us, or, behind a trusted proxy, the one it forwarded for.

    X-Forwarded-For is read right to left, skipping our own proxies; the first other
    address is the client, believed only if it is a valid public address.
    """
    peer = _address(remote_addr)
    if peer is None or not forwarded_for or not any(peer in net for net in trusted):
        return remote_addr
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            return remote_addr
        if any(address in net for net in trusted):
            continue
        return str(address) if address.is_global else remote_addr
    return remote_addr
