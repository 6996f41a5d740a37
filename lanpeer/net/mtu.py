"""The QUIC datagram size for a link, from the MTU of the interface that carries it.

Owns the MTU lookup (sysfs via the interface that reaches or owns an address) and aioquic's
usable maximum. Never sends a packet: finding the route uses an unconnected-UDP ``connect``.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import ifaddr

#: aioquic writes STREAM frame lengths as 2-byte varints: above 16384 the peer dies.
MAX_USABLE_DATAGRAM = 16384
#: IPv6 (40) + UDP (8) headers: 1452 at MTU 1500, no IP fragmentation for either family.
_UDP_OVERHEAD = 48


def datagram_size_for(host: str, override: int | None = None) -> int:
    """Largest QUIC datagram that crosses the link to ``host`` unfragmented (16384 on loopback)."""
    if override is not None:
        return override
    mtu = interface_mtu(host)
    return max(1200, min(MAX_USABLE_DATAGRAM, mtu - _UDP_OVERHEAD))


def interface_mtu(host: str) -> int:
    """MTU of the interface that reaches (or owns) ``host``; 1500 when unknown."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return 1500
    if address.is_loopback:
        return 65536
    adapters = ifaddr.get_adapters()
    if address.is_unspecified:  # a wildcard listener: the smallest LAN interface decides
        mtus = [_read_mtu(a.name) for a in adapters if a.name != "lo" and a.ips]
        return min((m for m in mtus if m), default=1500)
    local = _local_address_towards(host)
    for adapter in adapters:
        if any(ip.ip == local for ip in adapter.ips):
            return _read_mtu(adapter.name) or 1500
    return 1500


def _local_address_towards(host: str) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, 9))
        except OSError:
            return None
        local: str = probe.getsockname()[0]
        return local


def _read_mtu(name: str) -> int | None:
    try:
        return int(Path(f"/sys/class/net/{name}/mtu").read_text())
    except (OSError, ValueError):
        return None
