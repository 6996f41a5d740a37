"""``peer-cli doctor``: checks what blocks discovery or speed, and says what to do (SPEC §9).

Owns the checks: interfaces with multicast, our own mDNS advert, bound ports, peers seen vs
static peers, free space per root, bandwidth caps, recent transfer rates. Reads only local
state (/sys, /proc, statvfs, the daemon parts); never sends traffic off this host.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lanpeer_proto.control import DoctorCheck

if TYPE_CHECKING:
    from lanpeer.control.commands import Parts

_IFF_UP, _IFF_LOOPBACK, _IFF_RUNNING, _IFF_MULTICAST = 0x1, 0x8, 0x40, 0x1000
# Below this, a 150 GB game does not fit: worth a warning before anyone starts a download.
LOW_SPACE = 20 << 30
MIB = 1 << 20


async def run_checks(parts: Parts) -> list[DoctorCheck]:
    checks = [DoctorCheck(name="daemon", status="ok", summary="lanpeerd is running and answering")]
    checks += _part_checks(parts)
    checks.append(interfaces_check(Path("/sys/class/net")))
    checks += _net_checks(parts)
    checks += [space_check(root) for root in parts.config.games]
    checks.append(_caps_check(parts))
    checks += _transfer_checks(parts)
    return checks


def _part_checks(parts: Parts) -> list[DoctorCheck]:
    return [
        DoctorCheck(name=f"part:{name}", status="fail", summary=f"{name} is not running: {why}")
        for name, why in parts.missing.items()
    ]


def interfaces_check(sys_net: Path) -> DoctorCheck:
    """Which interfaces are up with multicast (mDNS needs one that is not loopback)."""
    usable: list[str] = []
    down: list[str] = []
    for device in sorted(sys_net.iterdir()) if sys_net.is_dir() else []:
        try:
            flags = int((device / "flags").read_text().strip(), 16)
        except (OSError, ValueError):
            continue
        if flags & _IFF_LOOPBACK:
            continue
        up = flags & _IFF_UP and flags & _IFF_RUNNING
        (usable if up and flags & _IFF_MULTICAST else down).append(device.name)
    if usable:
        return DoctorCheck(
            name="interfaces", status="ok", summary=f"multicast-capable and up: {', '.join(usable)}"
        )
    return DoctorCheck(
        name="interfaces",
        status="warn",
        summary="no non-loopback interface is up with multicast"
        + (f" (down or without multicast: {', '.join(down)})" if down else ""),
        hint="connect to the LAN, or use static peers: lanpeerd --peer HOST:PORT",
    )


def _net_checks(parts: Parts) -> list[DoctorCheck]:
    node, config = parts.node, parts.config
    if node is None:
        return []
    mine = own_socket_inodes(Path("/proc/self/fd"))
    udp = bound_ports([Path("/proc/net/udp"), Path("/proc/net/udp6")], mine, state="07")
    tcp = bound_ports([Path("/proc/net/tcp"), Path("/proc/net/tcp6")], mine, state="0A")
    return [
        ports_check(config.port, udp, tcp, config.bulk),
        _mdns_check(node, config.mdns),
        peers_check(node.peers(), config.peers, config.port),
    ]


def own_socket_inodes(fd_dir: Path) -> set[str]:
    """Inodes of the sockets this process holds (from /proc/self/fd links)."""
    inodes = set()
    for fd in fd_dir.iterdir() if fd_dir.is_dir() else []:
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # the fd was closed while we looked
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def bound_ports(tables: list[Path], inodes: set[str], state: str) -> set[int]:
    """Local ports of our sockets in /proc/net/{udp,tcp}[6] in ``state`` (07 UDP, 0A LISTEN)."""
    ports = set()
    for table in tables:
        try:
            rows = [line.split() for line in table.read_text().splitlines()[1:]]
        except OSError:
            continue
        for row in rows:
            if len(row) > 9 and row[3] == state and row[9] in inodes:
                ports.add(int(row[1].rsplit(":", 1)[1], 16))
    return ports


def ports_check(port: int, udp: set[int], tcp: set[int], bulk: str) -> DoctorCheck:
    if port not in udp:
        return DoctorCheck(
            name="ports",
            status="fail",
            summary=f"this daemon holds no UDP socket on port {port}",
            hint="check the daemon log for a bind error",
        )
    summary = f"QUIC on UDP {port}"
    if bulk == "auto" and tcp:
        summary += f"; TCP bulk path listening on {', '.join(map(str, sorted(tcp)))}"
    elif bulk == "auto":
        return DoctorCheck(
            name="ports",
            status="warn",
            summary=summary + "; no TCP bulk listener: chunks go over QUIC (slower)",
            hint="check the daemon log; firewalls must allow the bulk TCP port too",
        )
    else:
        summary += "; bulk path off (--bulk quic)"
    return DoctorCheck(
        name="ports",
        status="ok",
        summary=summary,
        hint="peers on other hosts need these ports open in the firewall",
    )


def _mdns_check(node: Any, mdns: bool) -> DoctorCheck:
    if not mdns:
        return DoctorCheck(
            name="mdns",
            status="info",
            summary="mDNS is off (--no-mdns); only static peers are dialled",
        )
    seen = getattr(node, "own_advert_seen", None)
    if seen is None:
        return DoctorCheck(
            name="mdns",
            status="info",
            summary="mDNS is on (advertising and browsing _lanpeer._udp); whether our own "
            "advert comes back is not reported by the net part yet",
            hint="if peers on the LAN stay invisible, multicast may be filtered: "
            "use --peer HOST:PORT or `peer-cli add-peer`",
        )
    if seen:
        return DoctorCheck(
            name="mdns", status="ok", summary="our own mDNS advert was seen on the LAN"
        )
    return DoctorCheck(
        name="mdns",
        status="warn",
        summary="our own mDNS advert was not seen: multicast may be filtered",
        hint="allow UDP 5353 multicast in the firewall, or use --peer HOST:PORT",
    )


def peers_check(peers: list[Any], static: list[tuple[str, int]], port: int) -> DoctorCheck:
    connected = [peer for peer in peers if getattr(peer, "connected", True)]
    summary = f"{len(connected)} peer(s) connected, {len(static)} static peer(s) configured"
    if connected:
        return DoctorCheck(name="peers", status="ok", summary=summary)
    return DoctorCheck(
        name="peers",
        status="warn",
        summary=summary,
        hint="no peer seen yet: check that others run lanpeerd on the same LAN and port, "
        f"that the firewall allows UDP {port}, or add one with `peer-cli add-peer HOST:PORT`",
    )


def space_check(root: Path) -> DoctorCheck:
    try:
        usage = shutil.disk_usage(root)
    except OSError as exc:
        return DoctorCheck(
            name=f"root {root}",
            status="fail",
            summary=f"game root is unavailable: {exc.strerror}",
            hint="create or mount it, or fix --games",
        )
    free = f"{usage.free / (1 << 30):.1f} GiB free of {usage.total / (1 << 30):.1f} GiB"
    if usage.free < LOW_SPACE:
        return DoctorCheck(
            name=f"root {root}", status="warn", summary=free, hint="large games will not fit"
        )
    return DoctorCheck(name=f"root {root}", status="ok", summary=free)


def _caps_check(parts: Parts) -> DoctorCheck:
    config = parts.config
    caps = [
        f"{label} {value / MIB:.1f} MiB/s"
        for label, value in (("upload", config.max_upload), ("download", config.max_download))
        if value
    ]
    if not caps:
        return DoctorCheck(name="bandwidth caps", status="info", summary="no bandwidth caps set")
    return DoctorCheck(name="bandwidth caps", status="info", summary="capped: " + ", ".join(caps))


def _transfer_checks(parts: Parts) -> list[DoctorCheck]:
    finished = [e for e in parts.events.recent_finished if e.kind == "download" and e.ok]
    if not finished:
        return [DoctorCheck(name="transfers", status="info", summary="no download finished yet")]
    return [transfer_check(event, parts.config.max_download) for event in finished[-5:]]


def transfer_check(event: Any, max_download: int | None) -> DoctorCheck:
    rate = event.bytes / event.seconds if event.seconds > 0 else 0.0
    size = f"{event.bytes / MIB:.1f} MiB in {event.seconds:.1f} s"
    summary = f"{event.game_id}: {size} = {rate / MIB:.1f} MiB/s"
    if max_download and rate >= 0.8 * max_download:
        limit = "limited by --max-download"
    elif len(event.peers_used) <= 1:
        limit = "one source only: more peers with the game make it faster"
    else:
        limit = f"from {len(event.peers_used)} peers"
    return DoctorCheck(name="transfers", status="info", summary=f"{summary} ({limit})")
