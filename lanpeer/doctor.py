"""``peer-cli doctor``: checks what blocks discovery or speed, and says what to do (SPEC §9).

Owns the checks: interfaces with multicast, our own mDNS advert, bound ports, peers seen vs
static peers, free space per root, bandwidth caps, recent transfer rates. Reads only local
state (/sys, /proc, statvfs, the daemon parts); never sends traffic off this host.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanpeer_proto import units
from lanpeer_proto.control import DoctorCheck, FinishedEvent

from lanpeer.config import DaemonConfig
from lanpeer.control.history import Finished
from lanpeer.library.diagnose import library_problems
from lanpeer.net.dialling import MdnsStatus
from lanpeer.net.peers import PeerInfo

# /sys/class/net/*/flags carries the administrative flags only: IFF_RUNNING (0x40) never shows
# there, so "is the link up" comes from operstate (and carrier when operstate is "unknown").
_IFF_UP, _IFF_LOOPBACK, _IFF_MULTICAST = 0x1, 0x8, 0x1000
# Below this, a 150 GB game does not fit: worth a warning before anyone starts a download.
LOW_SPACE = 20 << 30
NFT_TIMEOUT = 3.0  # reading the ruleset takes milliseconds; a hung nft must not hang doctor


@dataclass(frozen=True)
class DoctorInputs:
    """Everything doctor reads from the running daemon (the rest it reads from this host)."""

    config: DaemonConfig
    port: int  # the UDP port the node listens on (--port 0 lets the kernel pick it)
    mdns: MdnsStatus | None  # None: --no-mdns
    peers: Sequence[PeerInfo]
    finished: Sequence[FinishedEvent]  # recent finished operations, oldest first
    #: static peers (``--peer``, ``add-peer``) with their last dial error (None: no error)
    static_peers: Sequence[tuple[tuple[str, int], str | None]] = ()
    catalog_path: Path | None = None  # None: the library part is not running
    failures: Sequence[Finished] = ()  # failures not followed by a success, oldest first
    auto_update: DoctorCheck | None = None  # the updater's own check (mode, pins, retries)


async def run_checks(inputs: DoctorInputs) -> list[DoctorCheck]:
    config = inputs.config
    checks = [DoctorCheck(name="daemon", status="ok", summary="lanpeerd is running and answering")]
    checks.append(interfaces_check(Path("/sys/class/net")))
    checks += _net_checks(inputs)
    checks.append(await firewall_check(inputs.port))
    checks += [space_check(root) for root in config.games]
    if inputs.catalog_path is not None:
        checks.append(await catalog_check(config.games, inputs.catalog_path))
    checks.append(_caps_check(config))
    checks += _transfer_checks(inputs.finished, config.max_download)
    checks += failure_checks(inputs.failures)
    if inputs.auto_update is not None:
        checks.append(inputs.auto_update)  # auto-update: mode, pins, waits, failures
    return checks


def failure_checks(failures: Sequence[Finished], shown: int = 5) -> list[DoctorCheck]:
    """The failures that still stand (no success of that game since), newest first."""
    return [
        DoctorCheck(
            name=f"failed: {f.event.game_id}",
            status="warn",
            summary=f"{f.event.kind} of {f.event.game_id} failed: {f.event.error}",
            hint=f.hint
            or f"see the daemon log; retry with `peer-cli {f.event.kind} {f.event.game_id}`",
        )
        for f in reversed(list(failures)[-shown:])
    ]


async def catalog_check(roots: list[Path], catalog_path: Path) -> DoctorCheck:
    """Game dirs and catalog entries the library skips, each with why (scans in a thread)."""
    problems = await asyncio.to_thread(library_problems, roots, catalog_path)
    if not problems:
        return DoctorCheck(name="catalog", status="ok", summary=f"{catalog_path}: no problems")
    return DoctorCheck(
        name="catalog",
        status="warn",
        summary="; ".join(problems)[:4000],
        hint="games with these problems are not shown, advertised or served until fixed",
    )


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
        up = flags & _IFF_UP and _link_up(device)
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


def _link_up(device: Path) -> bool:
    operstate = _read(device / "operstate")
    if operstate == "up":
        return True
    # Virtual devices (tun, some bridges) report "unknown": their carrier says it.
    return operstate in ("unknown", "") and _read(device / "carrier") == "1"


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:  # carrier cannot be read while the device is down (EINVAL)
        return ""


def _net_checks(inputs: DoctorInputs) -> list[DoctorCheck]:
    config = inputs.config
    mine = own_socket_inodes(Path("/proc/self/fd"))
    udp = bound_ports([Path("/proc/net/udp"), Path("/proc/net/udp6")], mine, state="07")
    tcp = bound_ports([Path("/proc/net/tcp"), Path("/proc/net/tcp6")], mine, state="0A")
    return [
        ports_check(inputs.port, udp, tcp, config.bulk),
        mdns_check(inputs.mdns),
        peers_check(
            inputs.peers,
            [address for address, _ in inputs.static_peers] or config.peers,
            inputs.port,
            dict(inputs.static_peers),
        ),
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


#: How long after our advert is registered its echo may take before doctor calls it missing
#: (python-zeroconf announces at once, then at 1 s and 2 s; browses query within ~1 s).
ADVERT_ECHO_WAIT = 5.0


def mdns_check(status: MdnsStatus | None) -> DoctorCheck:
    """From the node's ``MdnsStatus`` (None: --no-mdns)."""
    if status is None:
        return DoctorCheck(
            name="mdns",
            status="info",
            summary="mDNS is off (--no-mdns); only static peers are dialled",
        )
    if not status.running:
        return DoctorCheck(
            name="mdns",
            status="warn",
            summary="mDNS is not running: no LAN IPv4 address to advertise on",
            hint="bring up a LAN interface and restart lanpeerd, or use --peer HOST:PORT",
        )
    if status.own_advert_seen:
        return DoctorCheck(
            name="mdns",
            status="ok",
            summary="our own mDNS advert came back through a browse (multicast works here)",
        )
    if status.advertised_for is None or status.advertised_for < ADVERT_ECHO_WAIT:
        return DoctorCheck(
            name="mdns",
            status="info",
            summary="mDNS is starting: our advert is not confirmed yet; run doctor again",
        )
    return DoctorCheck(
        name="mdns",
        status="warn",
        summary=f"our own mDNS advert has not come back in {status.advertised_for:.0f} s: "
        "multicast is filtered on this host",
        hint="allow UDP 5353 multicast in the firewall (in and out), or use --peer HOST:PORT",
    )


def peers_check(
    peers: Sequence[PeerInfo],
    static: Sequence[tuple[str, int]],
    port: int,
    errors: dict[tuple[str, int], str | None] | None = None,
) -> DoctorCheck:
    connected = [peer for peer in peers if peer.connected]
    reached = {tuple(peer.address) for peer in connected}
    why = errors or {}
    missing = [
        f"{host}:{p}" + (f" ({why[(host, p)]})" if why.get((host, p)) else "")
        for host, p in static
        if (host, p) not in reached
    ]
    summary = f"{len(connected)} peer(s) connected, {len(static)} static peer(s) configured"
    if missing:
        return DoctorCheck(
            name="peers",
            status="warn",
            summary=f"{summary}; not connected: {', '.join(missing)}",
            hint="is lanpeerd running there, on that port, with the same --party-key? "
            "the daemon keeps redialling static peers",
        )
    if connected:
        return DoctorCheck(name="peers", status="ok", summary=summary)
    return DoctorCheck(
        name="peers",
        status="warn",
        summary=summary,
        hint="no peer seen yet: check that others run lanpeerd on the same LAN and port, "
        f"that the firewall allows UDP {port}, or add one with `peer-cli add-peer HOST:PORT`",
    )


async def firewall_check(port: int) -> DoctorCheck:
    """Read (never change) the nftables ruleset: an input hook that drops is worth a warning."""
    allow = f"allow UDP {port} (QUIC), UDP 5353 (mDNS) and the bulk TCP port"
    nft = shutil.which("nft")
    if nft is None or os.geteuid() != 0:
        return DoctorCheck(
            name="firewall",
            status="info",
            summary="not inspected (needs root and nft)",
            hint=f"if peers cannot connect, {allow}",
        )
    try:
        proc = await asyncio.create_subprocess_exec(
            nft, "-j", "list", "ruleset", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with asyncio.timeout(NFT_TIMEOUT):
            out, _ = await proc.communicate()
        ruleset = json.loads(out or b"{}")
    except (OSError, TimeoutError, ValueError) as exc:
        return DoctorCheck(name="firewall", status="info", summary=f"nft failed: {exc}")
    return firewall_from_ruleset(ruleset, allow)


# ``Any``: the parsed JSON of ``nft -j``, whose shape nft owns; read with .get() and defaults.
def firewall_from_ruleset(ruleset: dict[str, Any], allow: str) -> DoctorCheck:
    """What an ``nft -j list ruleset`` document means for lanpeer's ports."""
    items = ruleset.get("nftables", [])
    inputs = {
        (c["family"], c["table"], c["name"]): c.get("policy", "accept")
        for item in items
        if isinstance(c := item.get("chain"), dict) and c.get("hook") == "input"
    }
    drops = sum(
        1
        for item in items
        if isinstance(r := item.get("rule"), dict)
        and (r.get("family"), r.get("table"), r.get("chain")) in inputs
        and any("drop" in e or "reject" in e for e in r.get("expr", []) if isinstance(e, dict))
    )
    if not inputs:
        return DoctorCheck(name="firewall", status="ok", summary="no nftables input filtering")
    policy_drop = [name for (_, _, name), policy in inputs.items() if policy == "drop"]
    summary = f"{len(inputs)} input chain(s), {drops} drop/reject rule(s)"
    if policy_drop:
        summary += f", policy drop on {', '.join(policy_drop)}"
    if policy_drop or drops:
        return DoctorCheck(name="firewall", status="warn", summary=summary, hint=allow)
    return DoctorCheck(name="firewall", status="ok", summary=summary + ", all accepted")


def space_check(root: Path) -> DoctorCheck:
    try:
        usage = shutil.disk_usage(root)
        read_only = bool(os.statvfs(root).f_flag & os.ST_RDONLY)
    except OSError as exc:
        return DoctorCheck(
            name=f"root {root}",
            status="fail",
            summary=f"game root is unavailable: {exc.strerror}",
            hint="create or mount it, or fix --games",
        )
    free = f"{units.size(usage.free)} free of {units.size(usage.total)}"
    if read_only or not os.access(root, os.W_OK | os.X_OK):
        why = "is on a read-only filesystem" if read_only else "is not writable by this user"
        return DoctorCheck(
            name=f"root {root}",
            status="fail",
            summary=f"game root {why} ({free}): downloads into it will fail",
            hint="remount it read-write, fix its permissions, or pick another --games root",
        )
    if usage.free < LOW_SPACE:
        return DoctorCheck(
            name=f"root {root}", status="warn", summary=free, hint="large games will not fit"
        )
    return DoctorCheck(name=f"root {root}", status="ok", summary=free)


def _caps_check(config: DaemonConfig) -> DoctorCheck:
    caps = [
        f"{label} {units.rate(value)}"
        for label, value in (("upload", config.max_upload), ("download", config.max_download))
        if value
    ]
    if not caps:
        return DoctorCheck(name="bandwidth caps", status="info", summary="no bandwidth caps set")
    return DoctorCheck(name="bandwidth caps", status="info", summary="capped: " + ", ".join(caps))


def _transfer_checks(
    recent: Sequence[FinishedEvent], max_download: int | None
) -> list[DoctorCheck]:
    finished = [e for e in recent if e.kind == "download" and e.ok]
    if not finished:
        return [DoctorCheck(name="transfers", status="info", summary="no download finished yet")]
    return [transfer_check(event, max_download) for event in finished[-5:]]


def transfer_check(event: FinishedEvent, max_download: int | None) -> DoctorCheck:
    rate = event.bytes / event.seconds if event.seconds > 0 else 0.0
    size = f"{units.size(event.bytes)} in {event.seconds:.1f} s"
    summary = f"{event.game_id}: {size} = {units.rate(rate)}"
    if max_download and rate >= 0.8 * max_download:
        limit = "limited by --max-download"
    elif len(event.peers_used) <= 1:
        limit = "one source only: more peers with the game make it faster"
    else:
        limit = f"from {len(event.peers_used)} peers"
    return DoctorCheck(name="transfers", status="info", summary=f"{summary} ({limit})")
