"""A scenario's world: N hosts, either in a network-namespace lab or on loopback.

Owns choosing the mode (the netns lab of ``tests/netlab/lab.py`` when root and ``ip netns``
work, else loopback with static peers, and why), placing each host's daemon, the static-peer
wiring and the faults (cut/heal, rate, loss, readdress). Never creates anything in the root
network namespace and never kills a process it did not start; ``close()`` always runs.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.scenarios import delayline
from tests.scenarios.harness import Peer

LAB_FILE = Path(__file__).resolve().parents[1] / "netlab" / "lab.py"
NETNS_PORT = 47600


def _load_lab() -> ModuleType | None:
    if not LAB_FILE.is_file():
        return None
    name = "lanpeer_scenarios_netlab"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, LAB_FILE)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        # Our own counter range: lab prefixes stay distinct from tests/netlab's in one process.
        module._counter = itertools.count(500)
    return sys.modules[name]


def mode() -> tuple[str, str]:
    """("netns" | "loopback", why). ``LANPEER_SCENARIOS=loopback`` forces loopback."""
    if os.environ.get("LANPEER_SCENARIOS") == "loopback":
        return "loopback", "LANPEER_SCENARIOS=loopback"
    lab = _load_lab()
    if lab is None:
        return "loopback", f"{LAB_FILE} is not in this tree"
    reason = lab.unavailable_reason()
    if reason is not None:
        return "loopback", str(reason)
    return "netns", "root and ip netns available"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class World:
    """``World(tmp, hosts=3, discovery="static"|"mdns")``; add peers, start, fault, close."""

    def __init__(self, tmp: Path, hosts: int, *, discovery: str = "static") -> None:
        self.mode, self.why = mode()
        self.tmp = tmp
        self.discovery = "static" if self.mode == "loopback" else discovery
        self.peers: list[Peer] = []
        self.run_dir = Path(tempfile.mkdtemp(prefix="lps"))  # short: AF_UNIX path limit
        self._readdressed = itertools.count(100)
        self.lab: Any = None
        self._helpers: list[subprocess.Popen[bytes]] = []
        if self.mode == "netns":
            lab_module = _load_lab()
            assert lab_module is not None
            self.lab = lab_module.NetLab(hosts)
            self.lab.up()

    # -- hosts ---------------------------------------------------------------------

    def add(self, name: str, *, extra: Sequence[str] = ()) -> Peer:
        index = len(self.peers)
        if self.lab is not None:
            host = self.lab.hosts[index]
            address, port = host.address, NETNS_PORT
        else:
            address, port = "127.0.0.1", _free_port()
        peer = Peer(name=name, home=self.tmp / name, socket=self.run_dir / f"{name}.sock",
                    address=address, port=port, launch=self._launcher(index),
                    mdns=self.discovery == "mdns", extra=list(extra))  # fmt: skip
        self.peers.append(peer)
        return peer

    def _launcher(self, index: int) -> Any:
        def launch(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as err:
                options: dict[str, Any] = {"stdin": subprocess.DEVNULL,
                                           "stdout": subprocess.DEVNULL, "stderr": err}  # fmt: skip
                if self.lab is not None:
                    return self.lab.start(self.lab.hosts[index], list(argv), **options)  # type: ignore[no-any-return]
                return subprocess.Popen(list(argv), **options)

        return launch

    def start(self, *peers: Peer, seeders_first: bool = True) -> None:
        """Start these peers (default: all) and wait until each answers.

        Hosts with a catalog start first and are waited on until they advertise their games
        (library_rev >= 1): a peer that connects while the seeder's first scan is still
        running may never learn the seeder's games (see README, known blockers).
        """
        chosen = list(peers) or self.peers
        seeders = [p for p in chosen if (p.games / "catalog.toml").is_file()]
        if not seeders_first or len(seeders) == len(chosen):
            seeders = []
        self._spawn_and_wait(seeders)
        for seeder in seeders:
            seeder.wait_advertising()
        self._spawn_and_wait([p for p in chosen if p not in seeders])

    def _spawn_and_wait(self, peers: list[Peer]) -> None:
        for peer in peers:
            if self.discovery == "static":
                # One direction only (each host dials the hosts added before it): two hosts
                # dialling each other at once is a separate race (see README, blockers).
                peer.static_peers = [p.listen for p in self.peers[: self.peers.index(peer)]]
            peer.spawn()
        for peer in peers:
            peer.wait_ready()

    def restart(self, peer: Peer) -> None:
        peer.stop()
        if self.discovery == "static":
            peer.static_peers = [p.listen for p in self.peers if p is not peer]
        peer.start()

    # -- faults --------------------------------------------------------------------

    def require_lab(self, what: str) -> None:
        if self.lab is None:
            pytest.skip(f"{what} needs the netns lab; scenarios run on loopback: {self.why}")

    def _host(self, peer: Peer) -> Any:
        self.require_lab("this fault")
        return self.lab.hosts[self.peers.index(peer)]

    def cut(self, peer: Peer) -> None:
        self.lab.cut(self._host(peer))

    def heal(self, peer: Peer) -> None:
        self.lab.heal(self._host(peer))

    def rate(self, peer: Peer, rate: str) -> None:
        """Cap traffic toward ``peer`` at the switch (tbf; excess is dropped like a router)."""
        self.lab.rate(self._host(peer), rate)

    def loss(self, peer: Peer, percent: int) -> None:
        """Drop ``percent`` % of frames sent by ``peer`` on the bridge (mDNS spared)."""
        self.lab.loss(self._host(peer), percent)

    def delay(self, peer: Peer, delay_ms: float) -> None:
        """Delay frames to and from ``peer`` by ``delay_ms`` each way (userspace delay line)."""
        self._helpers.append(delayline.insert(self.lab, self._host(peer), delay_ms))

    def readdress(self, peer: Peer) -> str:
        """Give ``peer`` a new address (daemon must be stopped); returns the new listen."""
        if self.lab is None:
            # A new port only: lanpeerd dials from an unbound socket, so on loopback the
            # source address of its connections is 127.0.0.1 whatever --bind says.
            peer.port = _free_port()
            return peer.listen
        host = self._host(peer)
        new = host.address.rsplit(".", 1)[0] + f".{next(self._readdressed) + host.index}"
        self.lab.on(host, ["ip", "addr", "flush", "dev", "eth0"])
        self.lab.on(host, ["ip", "addr", "add", f"{new}/24", "dev", "eth0"])
        self.lab.on(host, ["ip", "route", "replace", "224.0.0.0/4", "dev", "eth0"])
        peer.address = new
        return peer.listen

    def run_in(self, peer: Peer, argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
        """A helper process in ``peer``'s namespace (killed at close if still running)."""
        return self.lab.start(self._host(peer), list(argv), **popen)  # type: ignore[no-any-return]

    # -- teardown ------------------------------------------------------------------

    def close(self) -> None:
        try:
            for peer in self.peers:
                peer.close()
            for helper in self._helpers:
                helper.kill()
                helper.communicate(timeout=10)
        finally:
            if self.lab is not None:
                self.lab.down()
            shutil.rmtree(self.run_dir, ignore_errors=True)
