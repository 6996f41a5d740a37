"""ChunkScheduler: fetch every missing chunk of one download from all sources at once.

The I/O half of the download engine: it turns the ``Planner``'s decisions (which chunk from which
source, backoff, bans, endgame, rarest first) into request tasks and feeds their outcomes back.
It owns the tasks, the bandwidth cap, the `stalled` state and its timeout. It never writes files
itself: ``store`` verifies and writes a chunk (in a worker thread) and raises ``ChunkMismatch``
for bytes failing BLAKE3. Its tasks belong to one ``OwnedTasks`` that lives as long as ``run``:
none outlives it, and a request's failure is data (an ``Outcome``), never raised into the group.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from lanpeer.download.operations import OpState
from lanpeer.download.plan import ChunkRef
from lanpeer.download.planner import BACKOFF, HaveSet, Lane, Outcome, Planner, SchedulerSettings
from lanpeer.download.progress import TransferCounters
from lanpeer.download.sources import (
    GONE_CODES,
    ChunkSource,
    SourceDirectory,
    refusal_code,
    source_haves,
    source_rtt,
)
from lanpeer.errors import LanpeerError
from lanpeer.ratelimit import TokenBucket
from lanpeer.tasks import OwnedTasks

log = logging.getLogger(__name__)

__all__ = ["BACKOFF", "ChunkMismatch", "ChunkScheduler", "NoSourcesError", "SchedulerSettings"]


class ChunkMismatch(LanpeerError):
    code = "chunk_mismatch"


class NoSourcesError(LanpeerError):
    code = "no_sources"


class SourceVersionGone(LanpeerError):
    """Every source stopped serving this manifest_hash (its content changed)."""

    code = "source_changed"


Store = Callable[[ChunkRef, bytes], Awaitable[None]]
OnChunk = Callable[[ChunkRef, str], None]


@dataclass(slots=True, eq=False)
class _Request:
    """One chunk asked of one lane, and how it ended: ``error`` None if it was stored."""

    chunk: ChunkRef
    lane: Lane
    error: Exception | None = None


class ChunkScheduler:
    def __init__(
        self,
        game_id: str,
        manifest_hash: bytes,
        chunks: Iterable[ChunkRef],
        directory: SourceDirectory,
        store: Store,
        *,
        on_chunk: OnChunk | None = None,
        on_state: Callable[[OpState], None] | None = None,
        counters: TransferCounters | None = None,
        limiter: TokenBucket | None = None,
        settings: SchedulerSettings | None = None,
        still_current: Callable[[], Awaitable[bool]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_fetching: Callable[[frozenset[ChunkRef]], None] | None = None,
    ) -> None:
        self.game_id, self.manifest_hash = game_id, manifest_hash
        self.settings = settings or SchedulerSettings()
        self.planner = Planner(chunks, self.settings, rng)
        self._directory, self._store = directory, store
        self._on_chunk, self._on_state = on_chunk, on_state
        self._on_fetching = on_fetching  # told the chunks with requests out, when they change
        self._fetching: frozenset[ChunkRef] = frozenset()
        self._limiter = limiter
        self._clock = clock
        self._still_current = still_current
        self._next_version_check = 0.0
        self._sources: dict[str, ChunkSource] = {}
        self._owned = OwnedTasks(log)  # the watcher and every request; open only in ``run``
        self._tasks: dict[asyncio.Task[None], _Request] = {}  # requests on the wire now
        self._finished: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._sources_dirty = True
        self.state = OpState.DOWNLOADING
        self.counters = counters or TransferCounters()  # the download's own, when it passes them

    @property
    def lanes(self) -> dict[str, Lane]:
        return self.planner.lanes

    # -- public --------------------------------------------------------------------------------

    def peer_rates(self) -> dict[str, float]:
        now = self._clock()
        return {p: lane.window.rate(now) for p, lane in self.lanes.items() if lane.listed}

    def sources(self) -> list[str]:
        return [p for p, lane in self.lanes.items() if lane.listed and not lane.banned]

    def partial_sources(self) -> list[str]:
        """Listed sources that hold only part of this version (other downloaders)."""
        return [p for p in self.sources() if self.lanes[p].partial]

    async def run(self) -> None:
        """Fetch until every chunk is verified; raise NoSourcesError / SourceVersionGone / I/O."""
        if not self.planner.remaining:
            return
        # Leaving the block (done, failed or cancelled) cancels and awaits every task at once.
        async with self._owned:
            self._owned.spawn(self._watch_sources(), f"{self.game_id}: the source watcher")
            await self._drive()

    # -- the loop ------------------------------------------------------------------------------

    async def _drive(self) -> None:
        while self.planner.remaining:
            now = self._clock()
            if self._sources_dirty:
                self._refresh_sources()
            for peer_id, source in self._sources.items():  # RTTs move; a few sources, cheap
                self.planner.set_rtt(peer_id, source_rtt(source))
            for lane, chunk in self.planner.next_requests(now):
                self._start(lane, chunk)
            self._tell_fetching()
            self._check_stalled(now)
            await self._check_version(now)
            await self._wait(self.planner.deadline(now))
            for task in self._take_finished():
                await self._settle(task)

    def _tell_fetching(self) -> None:
        if self._on_fetching is None:
            return
        fetching = self.planner.outstanding()
        if fetching != self._fetching:
            self._fetching = fetching
            self._on_fetching(fetching)

    async def _check_version(self, now: float) -> None:
        if self.state is not OpState.STALLED or self._still_current is None:
            return
        if now < self._next_version_check:
            return
        self._next_version_check = now + self.settings.version_check_every
        if not await self._still_current():
            raise SourceVersionGone(
                f"the peers offering {self.game_id!r} now serve another version"
            )

    async def _wait(self, timeout: float | None) -> None:  # noqa: ASYNC109 - varies per turn
        if self._finished or self._sources_dirty:
            return
        self._wake.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _watch_sources(self) -> None:
        while True:
            await self._directory.wait_sources_changed(self.settings.sources_poll)
            self._sources_dirty = True
            self._wake.set()

    def _refresh_sources(self) -> None:
        self._sources_dirty = False
        listed = {
            s.peer_id: s for s in self._directory.sources_for(self.game_id, self.manifest_hash)
        }
        # A new session or a fresh listing gives a peer another chance (bans stay).
        fresh = [p for p, s in listed.items() if self._sources.get(p) not in (None, s)]
        self._sources = listed
        haves: dict[str, HaveSet | None] = {p: source_haves(s) for p, s in listed.items()}
        self.planner.set_sources(haves, fresh)

    def _start(self, lane: Lane, chunk: ChunkRef) -> None:
        request = _Request(chunk, lane)
        task = self._owned.spawn(
            self._request(self._sources[lane.peer_id], request), f"{self.game_id}: a chunk request"
        )
        self._tasks[task] = request
        self.counters.requests += 1
        task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        self._finished.append(task)
        self._wake.set()

    def _take_finished(self) -> list[asyncio.Task[None]]:
        done, self._finished = self._finished, []
        return done

    async def _request(self, source: ChunkSource, request: _Request) -> None:
        """Fetch and store one chunk. Its failure is kept for ``_settle``, not raised: one
        request failing is an ``Outcome`` for the planner, not a reason to cancel the others."""
        try:
            await self._fetch(source, request.chunk)
        except Exception as exc:
            request.error = exc

    async def _fetch(self, source: ChunkSource, chunk: ChunkRef) -> None:
        if self._limiter is not None:
            await self._limiter.wait_acquire(chunk.length)
        # Time on the wire only: waiting for the bandwidth cap does not make a chunk overdue.
        self.planner.asked(chunk, self._clock())
        async with asyncio.timeout(self.settings.request_timeout):
            data = await source.fetch_chunk(
                self.game_id, self.manifest_hash, chunk.path, chunk.offset, chunk.length
            )
        if not self.planner.wanted(chunk):
            raise _Redundant
        try:
            await self._store(chunk, data)
        except ChunkMismatch:
            raise
        except Exception as exc:
            raise _StoreFailed from exc

    # -- outcomes ------------------------------------------------------------------------------

    async def _settle(self, task: asyncio.Task[None]) -> None:
        request = self._tasks.pop(task)
        chunk, lane, exc = request.chunk, request.lane, request.error
        now = self._clock()
        if task.cancelled():
            # Another copy won, or a banned peer's other requests: someone else fetches them.
            self.planner.done(lane, chunk, Outcome.CANCELLED, now)
            return
        if exc is None:
            self._verified(lane, chunk, now)
        elif isinstance(exc, _Redundant):
            self.counters.redundant += 1
            self.planner.done(lane, chunk, Outcome.REDUNDANT, now)
        elif isinstance(exc, ChunkMismatch):
            self._ban(lane, chunk, now)
        elif isinstance(exc, _StoreFailed):
            self.planner.done(lane, chunk, Outcome.FAILED, now)
            raise exc.__cause__ or exc  # disk full, I/O error: the download fails
        else:
            self._failed(lane, chunk, exc, now)

    def _verified(self, lane: Lane, chunk: ChunkRef, now: float) -> None:
        if not self.planner.wanted(chunk):
            self.counters.redundant += 1
            self.planner.done(lane, chunk, Outcome.REDUNDANT, now)
            return
        self.planner.done(lane, chunk, Outcome.VERIFIED, now)
        counters = self.counters
        counters.chunks_fetched += 1
        counters.bytes_fetched += chunk.length
        by_peer = counters.chunks_by_peer
        by_peer[lane.peer_id] = by_peer.get(lane.peer_id, 0) + 1
        bytes_by_peer = counters.bytes_by_peer
        bytes_by_peer[lane.peer_id] = bytes_by_peer.get(lane.peer_id, 0) + chunk.length
        if lane.partial:
            counters.bytes_from_partial += chunk.length
        for other, request in self._tasks.items():
            if request.chunk == chunk:
                other.cancel()  # endgame copies still on the wire
        if self._on_chunk is not None:
            self._on_chunk(chunk, lane.peer_id)

    def _ban(self, lane: Lane, chunk: ChunkRef, now: float) -> None:
        self.counters.rejected += 1
        self.planner.done(lane, chunk, Outcome.MISMATCH, now)
        log.warning(
            "%s: peer %s %s; dropped for this download", self.game_id, lane.peer_id, lane.banned
        )
        for t, request in self._tasks.items():
            if request.lane is lane:
                t.cancel()

    def _failed(self, lane: Lane, chunk: ChunkRef, exc: BaseException, now: float) -> None:
        self.counters.failures += 1
        gone = refusal_code(exc) in GONE_CODES
        self.planner.done(lane, chunk, Outcome.GONE if gone else Outcome.FAILED, now)
        if not gone and lane.retry_at > now:
            log.info(
                "%s: peer %s failed (%s); retry in %.0f s",
                self.game_id,
                lane.peer_id,
                exc,
                lane.retry_at - now,
            )

    def _check_stalled(self, now: float) -> None:
        if not self.planner.stalled(now):
            self._set_state(OpState.DOWNLOADING)
            return
        if self.state is not OpState.STALLED:
            self._next_version_check = now
            self._set_state(OpState.STALLED)
        if self.planner.stalled_for(now) >= self.settings.stall_timeout:
            raise NoSourcesError(
                f"no peer has served {self.game_id!r} for {self.settings.stall_timeout:.0f} s; "
                "the download stopped (start it again when a peer offering it is online)"
            )

    def _set_state(self, state: OpState) -> None:
        if state != self.state:
            self.state = state
            if self._on_state is not None:
                self._on_state(state)


class _Redundant(Exception):
    """An endgame copy arrived after another copy was verified."""


class _StoreFailed(Exception):
    """Our disk failed while storing a chunk (the cause says how); not the peer's fault."""
