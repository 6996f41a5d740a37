"""Real peers for download integration tests: GameLibrary + PeerNode on loopback, in this
process or in a child process (so a test can SIGKILL it), and the downloading side."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from lanpeer_proto.messages import GameSummary, Manifest
from lanpeer_proto.session import SessionTimers

from lanpeer.download import DownloadManager, SourceDirectory
from lanpeer.download.resolve import newest_offer, peer_manifest_resolver
from lanpeer.installs import install_downloaded
from lanpeer.library import GameLibrary
from lanpeer.library.samples import write_catalog
from lanpeer.net.identity import Identity
from lanpeer.net.node import NodeTimings, PeerNode
from lanpeer.net.session import SessionLimits
from tests.download.helpers import CHUNK

ROOT = Path(__file__).resolve().parents[2]
# A short stale timeout: a killed peer leaves the table (and net drops its bulk client) quickly.
TIMINGS = NodeTimings(stale_timeout=2.0, redial_min=0.1, redial_max=0.5, push_debounce=0.05)
LIMITS = SessionLimits(request_timeout=10.0)
TIMERS = SessionTimers(handshake=5.0, ping_interval=0.5, stale=3.0, close=1.0)


def make_node(home: Path, name: str, library: GameLibrary, **kw: object) -> PeerNode:
    return PeerNode(
        Identity.load_or_create(home / "identity"),
        library,
        name=name,
        bind="127.0.0.1",
        port=kw.pop("port", 0),  # type: ignore[arg-type]
        static_peers=kw.pop("static_peers", []),  # type: ignore[arg-type]
        mdns=False,
        timings=TIMINGS,
        session_limits=LIMITS,
        session_timers=TIMERS,
        **kw,  # type: ignore[arg-type]
    )


async def open_seed_library(home: Path, chunk_size: int = CHUNK) -> GameLibrary:
    """The library of ``home/games`` with every game in its catalog, hashed and advertised."""
    root = home / "games"
    ids = sorted(p.name for p in root.iterdir() if p.is_dir())
    write_catalog(root / "catalog.toml", ids)
    lib = GameLibrary([root], home / "library", watch=False, chunk_size=chunk_size)
    await lib.start()
    for game_id in ids:
        await lib.wait_manifest(game_id)
    return lib


@contextlib.asynccontextmanager
async def seeder(
    home: Path, name: str, chunk_size: int = CHUNK, **kw: object
) -> AsyncIterator[PeerNode]:
    """A seeding peer in this process over ``home/games`` (written by the test)."""
    lib = await open_seed_library(home, chunk_size)
    try:
        async with make_node(home, name, lib, **kw) as node:
            yield node
    finally:
        await lib.aclose()


@dataclass
class Leecher:
    library: GameLibrary
    node: PeerNode
    manager: DownloadManager

    async def wait_offers(self, game_id: str, count: int, limit: float = 15.0) -> Manifest:
        """Wait until ``count`` connected peers offer the newest version; its manifest."""
        async with asyncio.timeout(limit):
            while True:
                offer = newest_offer(self.node.peers(), game_id)
                if offer is not None:
                    srcs = self.node.sources_for(game_id, offer[1].manifest_hash or b"")
                    if len(srcs) >= count:
                        return await self.node.fetch_manifest(offer[0], game_id)
                await self.node.wait_sources_changed(0.25)

    def summary(self, game_id: str) -> GameSummary:
        offer = newest_offer(self.node.peers(), game_id)
        assert offer is not None
        return offer[1]


@contextlib.asynccontextmanager
async def leecher(
    home: Path,
    seeds: list[tuple[str, int]],
    *,
    directory: Callable[[PeerNode], SourceDirectory] | None = None,
    name: str = "leecher",
    swarm: bool = True,
    chunk_size: int = CHUNK,
    **mgr_kw: object,
) -> AsyncIterator[Leecher]:
    """The downloading peer: its own GameLibrary and PeerNode dialling ``seeds``; with ``swarm``
    its downloads serve what they verified (without, it answers "not serving": SPEC §7a)."""
    root = home / "games"
    root.mkdir(parents=True, exist_ok=True)
    lib = GameLibrary([root], home / "library", watch=False, chunk_size=chunk_size)
    node_kw = {} if swarm else {"swarm": False}
    async with lib, make_node(home, name, lib, static_peers=seeds, **node_kw) as node:
        sources = directory(node) if directory is not None else node
        resolver = peer_manifest_resolver(node)
        installer = partial(install_downloaded, lib)
        mgr = DownloadManager(
            lib, sources, offers=node, manifest_resolver=resolver, installer=installer,
            swarm=node.swarm, **mgr_kw,  # type: ignore[arg-type]
        )  # fmt: skip
        async with mgr:
            yield Leecher(lib, node, mgr)


class ChildPeer:
    """A peer process (tests.download.peer_main); SIGKILL it to make it vanish mid-transfer."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[dict[str, object]] = []

    async def start(self) -> dict[str, object]:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.download.peer_main", *self.args,
            cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return await self.next_line(lambda line: "listen" in line, 30.0)

    async def next_line(
        self, want: Callable[[dict[str, object]], bool], limit: float = 30.0
    ) -> dict[str, object]:
        assert self.proc is not None
        assert self.proc.stdout is not None
        async with asyncio.timeout(limit):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise RuntimeError(f"peer process exited ({await self.proc.wait()})")
                line = json.loads(raw)
                self.lines.append(line)
                if want(line):
                    return line

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()

    async def __aenter__(self) -> ChildPeer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()
