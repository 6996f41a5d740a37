"""A test-only LAN of network namespaces: one switch namespace with a bridge, N hosts.

Built exactly per research/netns-feasibility.md: the bridge lives in its own "switch"
namespace, each host gets a veth ``eth0`` with 10.213.<subnet>.(10+i)/24, no default
route and a multicast route, so traffic cannot leave the lab. Nothing is created in the
root namespace. Never touches namespaces, links or processes outside its own prefix;
kills only processes inside its own namespaces.

Faults: ``cut``/``heal`` a host's switch port, ``rate`` (tbf on the switch port: the
switch drops the excess, as a router would), ``loss`` (nft random drop on the bridge).
tc netem is not available on this kernel (see the research file), hence nft and tbf.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

#: Commands get this long; each takes milliseconds (8 hosts come up in 0.2 s).
COMMAND_TIMEOUT = 10.0
_counter = itertools.count()


class LabError(Exception):
    """A lab command failed; the message has the command and its stderr."""


class LabUnavailable(LabError):
    """Network namespaces cannot be used here; the message says why (for pytest.skip)."""


def unavailable_reason() -> str | None:
    """Why this machine cannot build a lab, or None if it can (root and ``ip`` present)."""
    if os.geteuid() != 0:
        return "network-namespace lab needs root (ip netns); running as uid " + str(os.geteuid())
    for tool in ("ip", "nft", "tc"):
        if shutil.which(tool) is None:
            return f"network-namespace lab needs `{tool}` (apt-get install iproute2 nftables)"
    return None


@dataclass(frozen=True)
class Host:
    index: int  # 1-based
    namespace: str
    address: str  # IPv4 of eth0
    port: str  # its veth end in the switch namespace


class NetLab:
    """Create with ``NetLab(2)``; use as a context manager (teardown also runs before setup)."""

    def __init__(self, hosts: int, *, subnet: int = 0, mtu: int = 1500) -> None:
        if not 1 <= hosts <= 200 or not 0 <= subnet <= 255:
            raise ValueError("1..200 hosts, subnet 0..255")
        self.prefix = f"lpt{os.getpid()}n{next(_counter)}"  # unique per run and per lab
        self.switch = f"{self.prefix}-sw"
        self.mtu = mtu
        self.hosts = [
            Host(i, f"{self.prefix}-h{i}", f"10.213.{subnet}.{10 + i}", f"v{i}")
            for i in range(1, hosts + 1)
        ]
        self._processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> NetLab:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- lifecycle -------------------------------------------------------------------

    def up(self) -> None:
        self.down()  # clears leftovers of a crashed run with the same prefix
        try:
            self._add_switch()
            for host in self.hosts:
                self._add_host(host)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop what we started, kill anything left inside our namespaces, delete them."""
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=COMMAND_TIMEOUT)
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
        self._processes.clear()
        for namespace in self._own_namespaces():
            for pid in self._pids_in(namespace):
                _kill(pid)
            _run(["ip", "netns", "del", namespace], check=False)

    def _add_switch(self) -> None:
        try:
            _run(["ip", "netns", "add", self.switch])
        except LabError as exc:  # e.g. a container without CAP_SYS_ADMIN
            raise LabUnavailable(f"cannot create a network namespace: {exc}") from exc
        self.in_switch(["ip", "link", "set", "lo", "up"])
        # mcast_snooping 0: the bridge floods all multicast, like an unmanaged switch.
        self.in_switch(["ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"])
        self.in_switch(["ip", "link", "set", "br0", "up"])

    def _add_host(self, host: Host) -> None:
        _run(["ip", "netns", "add", host.namespace])
        self.in_switch(
            ["ip", "link", "add", host.port, "mtu", str(self.mtu), "type", "veth",
             "peer", "name", "eth0", "netns", host.namespace]
        )  # fmt: skip
        self.in_switch(["ip", "link", "set", host.port, "master", "br0", "up"])
        self.on(host, ["ip", "link", "set", "lo", "up"])
        self.on(host, ["ip", "link", "set", "eth0", "mtu", str(self.mtu), "up"])
        self.on(host, ["ip", "addr", "add", f"{host.address}/24", "dev", "eth0"])
        # Without a default route, sendto() to a group fails with ENETUNREACH.
        self.on(host, ["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"])
        self.on(host, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])

    def _own_namespaces(self) -> list[str]:
        listing = _run(["ip", "netns", "list"], check=False).stdout.decode()
        names = [line.split()[0] for line in listing.splitlines() if line.strip()]
        ours = {self.switch, *(h.namespace for h in self.hosts)}
        return [name for name in names if name in ours]

    def _pids_in(self, namespace: str) -> list[int]:
        out = _run(["ip", "netns", "pids", namespace], check=False).stdout.decode()
        return [int(pid) for pid in out.split() if pid.isdigit()]

    # -- running things --------------------------------------------------------------

    def on(self, host: Host, argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
        """Run a short command inside ``host``; raises on failure."""
        return _run(["ip", "netns", "exec", host.namespace, *argv])

    def in_switch(self, argv: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
        return _run(["ip", "netns", "exec", self.switch, *argv])

    def start(self, host: Host, argv: Sequence[str], **popen: object) -> subprocess.Popen[bytes]:
        """Start a long-running process inside ``host``; killed by ``down()`` if still alive.

        ``ip netns exec`` execs the command, so ``Popen.pid`` is the process itself.
        """
        process: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            ["ip", "netns", "exec", host.namespace, *argv], **popen
        )
        self._processes.append(process)
        return process

    # -- faults ----------------------------------------------------------------------

    def cut(self, host: Host) -> None:
        """Partition ``host``: its switch port goes down (immediate)."""
        self.in_switch(["ip", "link", "set", host.port, "down"])

    def heal(self, host: Host) -> None:
        """Undo every fault on ``host``'s port: loss rule, rate limit, cut."""
        _run(["ip", "netns", "exec", self.switch, "nft", "delete", "table", "bridge",
              f"fault_h{host.index}"], check=False)  # fmt: skip
        _run(["ip", "netns", "exec", self.switch, "tc", "qdisc", "del", "dev", host.port,
              "root"], check=False)  # fmt: skip
        self.in_switch(["ip", "link", "set", host.port, "up"])

    def rate(self, host: Host, rate: str) -> None:
        """Limit traffic toward ``host`` (e.g. ``"50mbit"``); the switch drops the excess."""
        self.in_switch(["tc", "qdisc", "replace", "dev", host.port, "root", "tbf",
                        "rate", rate, "burst", "256kb", "latency", "50ms"])  # fmt: skip

    def loss(self, host: Host, percent: int, *, spare_mdns: bool = True) -> None:
        """Silently drop ``percent`` % of frames sent by ``host`` (on the bridge, not the
        sender's output hook, where sendto() would fail with EPERM)."""
        if not 0 <= percent <= 100:
            raise ValueError("percent must be 0..100")
        spare = "udp dport != 5353 " if spare_mdns else ""
        chance = "" if percent == 100 else f"numgen random mod 100 < {percent} "
        rule = (
            f"table bridge fault_h{host.index} {{ chain c {{ type filter hook forward priority 0; "
            f'iifname "{host.port}" {spare}{chance}drop; }}; }}'
        )
        _run(["ip", "netns", "exec", self.switch, "nft", "-f", "-"], input_bytes=rule.encode())


def _run(
    argv: Sequence[str], *, check: bool = True, input_bytes: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        list(argv), input=input_bytes, capture_output=True, timeout=COMMAND_TIMEOUT, check=False
    )
    if check and result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise LabError(f"`{' '.join(argv)}` failed ({result.returncode}): {stderr}")
    return result


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
