"""Fixtures for the peer network: running peer nodes on loopback over real-file libraries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tests.net.dirlibrary import DirLibrary

from lanpeer.net.identity import Identity
from lanpeer.net.node import NodeTimings, PeerNode
from lanpeer.net.session import SessionLimits

FAST = NodeTimings(stale_timeout=30.0, redial_min=0.1, redial_max=0.5, push_debounce=0.05)


@asynccontextmanager
async def running_node(
    tmp: Path,
    name: str,
    *,
    static: list[tuple[str, int]] | None = None,
    library: DirLibrary | None = None,
    **kwargs: object,
) -> AsyncIterator[PeerNode]:
    identity = Identity.load_or_create(tmp / name / "state")
    node = PeerNode(
        identity,
        library or DirLibrary(tmp / name / "games"),
        name=name,
        bind="127.0.0.1",
        port=0,
        static_peers=static or [],
        mdns=False,
        timings=kwargs.pop("timings", FAST),  # type: ignore[arg-type]
        session_limits=kwargs.pop(
            "session_limits",
            SessionLimits(  # type: ignore[arg-type]
                ping_interval=0.5, silence_timeout=3.0, request_timeout=10.0
            ),
        ),
        **kwargs,
    )  # type: ignore[arg-type]
    async with node:
        yield node


async def wait_for(node: PeerNode, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition on the node's peer table, woken by its peer events."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await node.wait_sources_changed(0.25)


@pytest.fixture
def lib_factory(tmp_path: Path) -> Callable[[str], DirLibrary]:
    return lambda name: DirLibrary(tmp_path / name / "games")
