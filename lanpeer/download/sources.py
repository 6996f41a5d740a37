"""Where chunk bytes come from: the ``ChunkSource`` and ``SourceDirectory`` seams (BRIEF: download).

net implements both on ``PeerNode``; tests implement them over real files. This module owns the
protocols and ``SourceSet``, a plain in-memory directory. It never opens sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from lanpeer_proto.errors import ErrorCode

from lanpeer.download.planner import HaveSet


@runtime_checkable
class ChunkSource(Protocol):
    """One peer able to serve chunks of one game version."""

    @property
    def peer_id(self) -> str: ...

    async def fetch_chunk(
        self, game_id: str, manifest_hash: bytes, path: str, offset: int, length: int
    ) -> bytes: ...


class SourceDirectory(Protocol):
    """Which peers currently offer a game version, and a way to wait until that changes."""

    def sources_for(self, game_id: str, manifest_hash: bytes) -> Sequence[ChunkSource]: ...

    async def wait_sources_changed(self, timeout: float) -> None: ...  # noqa: ASYNC109


#: Refusals that mean "this peer no longer serves this version": stop asking it, no backoff.
GONE_CODES = frozenset({ErrorCode.NOT_FOUND, ErrorCode.STALE_MANIFEST, ErrorCode.BAD_PATH})


def refusal_code(exc: BaseException) -> str | None:
    """The wire error code a refusal carries (net's ChunkRefused, library's ServeRefused)."""
    for attr in ("wire_code", "code"):
        code = getattr(exc, attr, None)
        if isinstance(code, ErrorCode):
            return code.value
    return None


class SourceSet:
    """A mutable ``SourceDirectory``: sources registered per (game_id, manifest_hash)."""

    def __init__(self) -> None:
        self._sources: dict[tuple[str, bytes], dict[str, ChunkSource]] = {}
        self._changed = asyncio.Event()

    def add(self, game_id: str, manifest_hash: bytes, source: ChunkSource) -> None:
        self._sources.setdefault((game_id, manifest_hash), {})[source.peer_id] = source
        self._notify()

    def remove(self, peer_id: str) -> None:
        for by_peer in self._sources.values():
            by_peer.pop(peer_id, None)
        self._notify()

    def sources_for(self, game_id: str, manifest_hash: bytes) -> list[ChunkSource]:
        return list(self._sources.get((game_id, manifest_hash), {}).values())

    async def wait_sources_changed(self, timeout: float | None) -> None:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            return

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def source_haves(source: ChunkSource) -> HaveSet | None:
    """What a partial source holds (its ``haves``), or None for a source holding everything."""
    haves = getattr(source, "haves", None)
    return haves if isinstance(haves, HaveSet) else None


def source_rtt(source: ChunkSource) -> float | None:
    """A source's smoothed round-trip time in seconds (its ``rtt``), None when it has none:
    sources that are not peers (tests, the local library) need not say."""
    rtt = getattr(source, "rtt", None)
    return rtt if isinstance(rtt, float) else None
