"""The downloading side of the swarm: one ``Member`` per download of ours (SPEC §7a).

Owns, per download, one have-set watch per swarm-capable peer that is not a full source (a
held ``GetHaves``, then increments), the ``PartialSource`` each answer builds, and the
``SourceDirectory`` that lists full and partial sources together; also what ``game GAME``
shows of them (``PartialHolder``). Announces our own verified chunks and fetches in flight
through the ``SwarmHost`` that made it. Never serves and never verifies chunk bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lanpeer_proto.messages import GetHaves, Haves, Manifest

from lanpeer.download.plan import ChunkRef
from lanpeer.download.planner import HaveSet
from lanpeer.download.sources import ChunkSource, SourceDirectory
from lanpeer.download.swarm import numbered_chunks
from lanpeer.net.errors import ChunkRefused, PeerUnavailable
from lanpeer.net.fetching import PeerChunkSource
from lanpeer.net.identity import short_id
from lanpeer.tasks import OwnedTasks, wait_first

if TYPE_CHECKING:
    from lanpeer.net.swarm import Holding, SwarmHost

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartialHolder:
    """What one peer holds of the version one of our downloads fetches (``game GAME``)."""

    peer_id: str
    game_id: str
    version: str
    manifest_hash: bytes
    chunks: int
    bytes: int


@dataclass(eq=False)
class PartialSource:
    """A ``ChunkSource`` holding part of one version; the planner reads ``haves``."""

    inner: PeerChunkSource
    haves: HaveSet
    _summed: int = 0  # chunks of ``haves.order`` in ``_bytes``
    _bytes: int = 0

    @property
    def peer_id(self) -> str:
        return self.inner.peer_id

    @property
    def rtt(self) -> float | None:
        return self.inner.rtt

    def held_bytes(self) -> int:
        """Bytes of the chunks held; sums only what arrived since the last call
        (``haves.order`` only grows), so ``game GAME`` stays cheap for big have-sets."""
        order = self.haves.order
        self._bytes += sum(c.length for c in order[self._summed :])
        self._summed = len(order)
        return self._bytes

    async def fetch_chunk(
        self, game_id: str, manifest_hash: bytes, path: str, offset: int, length: int
    ) -> bytes:
        return await self.inner.fetch_chunk(game_id, manifest_hash, path, offset, length)


class Member:
    """One download in the swarm: announces its chunks, watches the other downloaders."""

    def __init__(
        self,
        host: SwarmHost,
        manifest: Manifest,
        holding: Holding | None,
        full_sources: SourceDirectory,
        tasks: OwnedTasks,
    ) -> None:
        self._host, self._manifest, self._holding = host, manifest, holding
        self._full = full_sources
        self._tasks = tasks  # the watches run here (``SwarmHost.join`` owns it)
        self._chunks = numbered_chunks(manifest)
        self.partials: dict[str, PartialSource] = {}
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()

    @property
    def directory(self) -> Member:
        return self

    def holds(self, chunk: ChunkRef) -> None:
        if self._holding is not None:
            self._host._hold(self._holding, chunk)

    def fetching(self, chunks: frozenset[ChunkRef]) -> None:
        if self._holding is not None:
            self._host._fetch_hint(self._holding, chunks)

    def holders(self) -> list[PartialHolder]:
        m = self._manifest
        return [
            PartialHolder(
                peer_id,
                m.game_id,
                m.version,
                m.manifest_hash,
                len(source.haves),
                source.held_bytes(),
            )
            for peer_id, source in sorted(self.partials.items())
            if source.haves
        ]

    # SourceDirectory ----------------------------------------------------------------------------
    def sources_for(self, game_id: str, manifest_hash: bytes) -> Sequence[ChunkSource]:
        full: list[ChunkSource] = list(self._full.sources_for(game_id, manifest_hash))
        if (game_id, manifest_hash) != (self._manifest.game_id, self._manifest.manifest_hash):
            return full
        ids = {s.peer_id for s in full}
        return full + [p for p in self.partials.values() if p.peer_id not in ids and p.haves]

    async def wait_sources_changed(self, timeout: float) -> None:  # noqa: ASYNC109 - seam
        """A have-set or the partial sources changed, or the full sources did, or timeout."""
        await wait_first(
            self._changed.wait(), self._full.wait_sources_changed(timeout), timeout=timeout
        )

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # watches ----------------------------------------------------------------------------------
    async def keep_watching(self) -> None:
        """Keep one watch per watchable peer; end watches of peers that left."""
        try:
            while True:
                wanted = set(self._host.watchable_peers(self._manifest, self._full))
                for peer_id in list(self._watches):
                    if peer_id not in wanted or self._watches[peer_id].done():
                        self._end_watch(peer_id)
                for peer_id in wanted - set(self._watches):
                    what = f"have-set watch of {short_id(peer_id)}"
                    self._watches[peer_id] = self._tasks.spawn(self._watch(peer_id), what)
                self._notify()  # a peer came, went or changed: the scheduler looks again
                await self._host.wait_peers_changed(self._host.limits.hold)
        finally:
            tasks = list(self._watches.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _end_watch(self, peer_id: str) -> None:
        task = self._watches.pop(peer_id)
        task.cancel()  # a watch that failed was logged when it did (OwnedTasks)
        if self.partials.pop(peer_id, None) is not None:
            self._notify()

    async def _watch(self, peer_id: str) -> None:
        m, limits = self._manifest, self._host.limits
        loop = asyncio.get_running_loop()
        since, current = 0, None
        while True:
            request = GetHaves(game_id=m.game_id, manifest_hash=m.manifest_hash, since=since,
                               wait=limits.hold)  # fmt: skip
            asked = loop.time()
            try:
                answer = await self._host._fetcher.link(peer_id).request(request)
            except PeerUnavailable:
                if self._host.connected(peer_id):
                    # A held answer that outlived our request timeout: the peer is still
                    # there and what we know of it still holds; ask again from ``since``.
                    await asyncio.sleep(limits.retry_after)
                    continue
                self._drop(peer_id)
                return  # keep_watching starts a new watch when the peer is back
            except ChunkRefused as exc:
                log.info("have-set watch of %s refused: %s", short_id(peer_id), exc)
                self._drop(peer_id)
                since = 0
                await asyncio.sleep(limits.retry_after)
                continue
            if not isinstance(answer, Haves) or answer.manifest_hash != m.manifest_hash:
                self._drop(peer_id)
                await asyncio.sleep(limits.retry_after)
                continue
            if not answer.serving:
                self._drop(peer_id)
                since, current = 0, None
                # A peer holds such an answer for ``hold``; one that answers at once must not
                # make us spin.
                await asyncio.sleep(max(0.0, limits.retry_after - (loop.time() - asked)))
                continue
            current = self._apply(peer_id, current, answer)
            since = answer.seq if current is not None else 0

    def _apply(self, peer_id: str, current: HaveSet | None, answer: Haves) -> HaveSet | None:
        chunks = self._chunks
        if answer.bits is not None:
            bits = answer.bits
            current = HaveSet(
                chunks[i]
                for i in range(min(len(chunks), len(bits) * 8))
                if bits[i >> 3] & (1 << (i & 7))
            )
            inner = PeerChunkSource(self._host._fetcher, peer_id)
            self.partials[peer_id] = PartialSource(inner, current)
        elif current is None:
            return None  # increments without a base: ask for the whole set again
        else:
            for i in answer.added:
                if i < len(chunks):
                    current.add(chunks[i])
        current.fetching = frozenset(chunks[i] for i in answer.fetching if i < len(chunks))
        self._notify()
        return current

    def _drop(self, peer_id: str) -> None:
        if self.partials.pop(peer_id, None) is not None:
            self._notify()
