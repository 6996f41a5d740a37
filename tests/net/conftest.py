"""Fixtures for the peer network: running peer nodes on loopback over real-file libraries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lanpeer_proto.session import SessionTimers

from lanpeer.net.identity import Identity
from lanpeer.net.library_view import LibraryView
from lanpeer.net.node import NodeTimings, PeerNode
from lanpeer.net.peers import PeerEvent, PeerEventKind
from lanpeer.net.session import SessionLimits
from tests.net.dirlibrary import DirLibrary

FAST = NodeTimings(
    stale_timeout=30.0, redial_min=0.1, redial_max=0.5, push_debounce=0.05, dial_yield=0.5
)


LIMITS = SessionLimits(request_timeout=10.0)
TIMERS = SessionTimers(handshake=5.0, ping_interval=0.5, stale=3.0, close=1.0)


@asynccontextmanager
async def running_node(
    tmp: Path,
    name: str,
    *,
    static: list[tuple[str, int]] | None = None,
    library: LibraryView | None = None,
    timings: NodeTimings = FAST,
    **kwargs: Any,
) -> AsyncIterator[PeerNode]:
    """A node on 127.0.0.1 (ephemeral ports, mDNS off) whose identity lives in tmp/name."""
    node = PeerNode(
        Identity.load_or_create(tmp / name / "state"),
        library or DirLibrary(tmp / name / "games"),
        name=name,
        bind="127.0.0.1",
        port=0,
        static_peers=static or [],
        mdns=False,
        timings=timings,
        session_limits=LIMITS,
        **{"session_timers": TIMERS, **kwargs},
    )
    async with node:
        yield node


def event_flag(node: PeerNode, kind: PeerEventKind, peer_id: str) -> asyncio.Event:
    """An event set when ``node`` reports ``kind`` for ``peer_id``."""
    flag = asyncio.Event()

    def seen(event: PeerEvent) -> None:
        if event.kind is kind and event.peer_id == peer_id:
            flag.set()

    node.add_listener(seen)
    return flag


async def wait_for(node: PeerNode, predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for a condition on the node's peer table, woken by its peer events."""
    async with asyncio.timeout(within):
        while not predicate():
            await node.wait_sources_changed(0.25)


async def poll_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll, bounded, where nothing signals: a bare QUIC connection (no session, no node
    events) has no event for "a stream arrived" or "the listener admitted it"."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.fixture
def lib_factory(tmp_path: Path) -> Callable[[str], DirLibrary]:
    return lambda name: DirLibrary(tmp_path / name / "games")


@pytest_asyncio.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running on its loop (a node that did not clean up)."""
    before = asyncio.all_tasks()
    yield
    leaked = [t for t in asyncio.all_tasks() - before - {asyncio.current_task()} if not t.done()]
    assert not leaked, f"tasks left running: {leaked}"
