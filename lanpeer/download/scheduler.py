"""ChunkScheduler: fetch every missing chunk of one download from all sources at once.

Owns the per-peer pipelines, retries with backoff, bans, endgame and the `stalled` state. It never
writes files itself: ``store`` verifies and writes a chunk (in a worker thread) and raises
``ChunkMismatch`` for bytes failing BLAKE3. Every task it starts is awaited before ``run`` returns.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from lanpeer.download.operations import OpState
from lanpeer.download.plan import ChunkRef
from lanpeer.download.progress import RateWindow, TransferCounters
from lanpeer.download.sources import GONE_CODES, ChunkSource, SourceDirectory, refusal_code
from lanpeer.errors import LanpeerError
from lanpeer.ratelimit import TokenBucket

log = logging.getLogger(__name__)

BACKOFF = (1.0, 2.0, 4.0)  # SPEC §7: transient peer errors back off 1 s, 2 s, 4 s


class ChunkMismatch(LanpeerError):
    code = "chunk_mismatch"


class NoSourcesError(LanpeerError):
    code = "no_sources"


class SourceVersionGone(LanpeerError):
    """Every source stopped serving this manifest_hash (its content changed)."""

    code = "source_changed"


@dataclass(slots=True)
class SchedulerSettings:
    # Bytes in flight per peer ~ its rate x this latency: enough to hide a LAN round trip and a
    # disk hiccup, small enough that a dying peer strands few chunks.
    target_latency: float = 0.25
    min_depth: int = 2
    max_depth: int = 16
    max_failures: int = 4  # a 4th failure in a row after 1+2+4 s of backoff drops the peer
    stall_timeout: float = 600.0  # fail a download that had no usable source this long
    endgame_copies: int = 2  # at most this many requests for one chunk near the end
    # An idle peer re-requests a chunk only once it has been outstanding this long: long enough
    # that a healthy LAN peer has answered, so endgame copies are rare and never wasted in bulk.
    endgame_after: float = 1.0
    sources_poll: float = 5.0  # re-read sources_for at least this often
    request_timeout: float = 60.0  # one chunk from one peer; a hung peer is a failing peer
    version_check_every: float = 2.0  # while stalled: ask whether the version still exists


@dataclass(eq=False, slots=True)
class PeerLane:
    """One source's share of the download."""

    source: ChunkSource
    window: RateWindow = field(default_factory=RateWindow)
    in_flight: int = 0
    failures: int = 0
    retry_at: float = 0.0
    listed: bool = True
    banned: str | None = None  # sent bad bytes: never again in this download
    gone: bool = False  # refused or failed too often: until the source list changes
    verified: int = 0  # chunks this peer delivered intact

    @property
    def peer_id(self) -> str:
        return self.source.peer_id

    def usable(self, now: float) -> bool:
        return self.listed and not self.banned and not self.gone and now >= self.retry_at

    def depth(self, now: float, chunk_len: int, s: SchedulerSettings) -> int:
        if self.failures or not self.verified:
            # Failing peers get less; a new peer gets one request until it has proven itself
            # (which also lets its transport set up one connection instead of racing several).
            return 1
        want = math.ceil(self.window.rate(now) * s.target_latency / max(chunk_len, 1)) + 1
        return max(s.min_depth, min(s.max_depth, want))


Store = Callable[[ChunkRef, bytes], Awaitable[None]]
OnChunk = Callable[[ChunkRef, str], None]


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
    ) -> None:
        self.game_id, self.manifest_hash = game_id, manifest_hash
        self._pending: deque[ChunkRef] = deque(chunks)
        self._remaining = {c for c in self._pending}
        self._directory, self._store = directory, store
        self._on_chunk, self._on_state = on_chunk, on_state
        self._limiter = limiter
        self.settings = settings or SchedulerSettings()
        self._clock = clock
        self._still_current = still_current
        self._next_version_check = 0.0
        self.lanes: dict[str, PeerLane] = {}
        self._copies: dict[ChunkRef, dict[asyncio.Task[None], PeerLane]] = {}
        self._tasks: dict[asyncio.Task[None], tuple[ChunkRef, PeerLane]] = {}
        self._asked: dict[ChunkRef, float] = {}  # when the first outstanding copy was requested
        self._finished: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._sources_dirty = True
        self._stalled_since: float | None = None
        self._chunk_len = max((c.length for c in self._pending), default=1)
        self.state = OpState.DOWNLOADING
        self.counters = counters or TransferCounters()  # the download's own, when it passes them

    # -- public --------------------------------------------------------------------------------

    def peer_rates(self) -> dict[str, float]:
        now = self._clock()
        return {p: lane.window.rate(now) for p, lane in self.lanes.items() if lane.listed}

    def sources(self) -> list[str]:
        return [p for p, lane in self.lanes.items() if lane.listed and not lane.banned]

    async def run(self) -> None:
        """Fetch until every chunk is verified; raise NoSourcesError / SourceVersionGone / I/O."""
        if not self._remaining:
            return
        watcher = asyncio.create_task(self._watch_sources())
        try:
            await self._drive()
        finally:
            tasks = [t for copies in self._copies.values() for t in copies]
            for t in [*tasks, watcher]:
                t.cancel()
            await asyncio.gather(*tasks, watcher, return_exceptions=True)

    # -- the loop ------------------------------------------------------------------------------

    async def _drive(self) -> None:
        while self._remaining:
            now = self._clock()
            if self._sources_dirty:
                self._refresh_sources()
            self._dispatch(now)
            self._check_stalled(now)
            await self._check_version(now)
            await self._wait(self._next_deadline(now))
            for task in self._take_finished():
                await self._settle(task)

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

    def _next_deadline(self, now: float) -> float:
        s = self.settings
        times = [lane.retry_at - now for lane in self.lanes.values() if lane.retry_at > now]
        if self._stalled_since is not None:
            times.append(self._stalled_since + s.stall_timeout - now)
        if self._asked and not self._pending:
            times.append(min(self._asked.values()) + s.endgame_after - now)
        # Past deadlines were handled by this turn's dispatch; never spin on them.
        return min([s.sources_poll, *(t for t in times if t > 0)])

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
        for lane in self.lanes.values():
            lane.listed = lane.peer_id in listed
        for peer_id, source in listed.items():
            known = self.lanes.get(peer_id)
            if known is None:
                self.lanes[peer_id] = PeerLane(source)
                continue
            lane = known
            if lane.source != source or lane.gone:
                # A new session or a fresh listing: give the peer another chance (bans stay).
                lane.source, lane.gone, lane.failures, lane.retry_at = source, False, 0, 0.0

    def _dispatch(self, now: float) -> None:
        for lane in self.lanes.values():
            if not lane.usable(now):
                continue
            depth = lane.depth(now, self._chunk_len, self.settings)
            while lane.in_flight < depth:
                chunk = self._next_chunk(lane, now)
                if chunk is None:
                    break
                self._start(lane, chunk)

    def _next_chunk(self, lane: PeerLane, now: float) -> ChunkRef | None:
        while self._pending:
            chunk = self._pending.popleft()
            if chunk in self._remaining and not self._copies.get(chunk):
                return chunk
        if lane.in_flight:
            return None
        # Endgame: nothing left to hand out and this peer is idle, so it re-requests the chunk
        # that has been outstanding longest, if that is overdue.
        s = self.settings
        overdue = [
            c
            for c, copies in self._copies.items()
            if len(copies) < s.endgame_copies
            and lane not in copies.values()
            and now - self._asked.get(c, now) >= s.endgame_after
        ]
        return min(overdue, key=lambda c: self._asked.get(c, now), default=None)

    def _start(self, lane: PeerLane, chunk: ChunkRef) -> None:
        task = asyncio.create_task(self._fetch(lane, chunk))
        self._copies.setdefault(chunk, {})[task] = lane
        self._tasks[task] = (chunk, lane)
        lane.in_flight += 1
        self.counters.requests += 1
        task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        self._finished.append(task)
        self._wake.set()

    def _take_finished(self) -> list[asyncio.Task[None]]:
        done, self._finished = self._finished, []
        return done

    async def _fetch(self, lane: PeerLane, chunk: ChunkRef) -> None:
        if self._limiter is not None:
            await self._limiter.wait_acquire(chunk.length)
        # Time on the wire only: waiting for the bandwidth cap does not make a chunk overdue.
        self._asked.setdefault(chunk, self._clock())
        async with asyncio.timeout(self.settings.request_timeout):
            data = await lane.source.fetch_chunk(
                self.game_id, self.manifest_hash, chunk.path, chunk.offset, chunk.length
            )
        if chunk not in self._remaining:
            raise _Redundant
        try:
            await self._store(chunk, data)
        except ChunkMismatch:
            raise
        except Exception as exc:
            raise _StoreFailed from exc

    # -- outcomes ------------------------------------------------------------------------------

    async def _settle(self, task: asyncio.Task[None]) -> None:
        chunk, lane = self._tasks.pop(task)
        self._copies[chunk].pop(task)
        if not self._copies[chunk]:
            del self._copies[chunk]
            self._asked.pop(chunk, None)
        lane.in_flight -= 1
        if task.cancelled():
            self._requeue(chunk)  # a banned peer's other requests: someone else fetches them
            return
        exc = task.exception()
        if exc is None:
            self._verified(lane, chunk)
        elif isinstance(exc, _Redundant):
            self.counters.redundant += 1
        elif isinstance(exc, ChunkMismatch):
            self._ban(lane, chunk)
        elif isinstance(exc, _StoreFailed):
            raise exc.__cause__ or exc  # disk full, I/O error: the download fails
        else:
            self._failed(lane, chunk, exc)

    def _verified(self, lane: PeerLane, chunk: ChunkRef) -> None:
        if chunk not in self._remaining:
            self.counters.redundant += 1
            return
        now = self._clock()
        self._remaining.discard(chunk)
        lane.window.add(now, chunk.length)
        lane.failures = 0
        lane.verified += 1
        self.counters.chunks_fetched += 1
        self.counters.bytes_fetched += chunk.length
        by_peer = self.counters.chunks_by_peer
        by_peer[lane.peer_id] = by_peer.get(lane.peer_id, 0) + 1
        for other in self._copies.get(chunk, {}):
            other.cancel()  # endgame copies still on the wire
        if self._on_chunk is not None:
            self._on_chunk(chunk, lane.peer_id)

    def _ban(self, lane: PeerLane, chunk: ChunkRef) -> None:
        self.counters.rejected += 1
        lane.banned = "sent a chunk that failed BLAKE3 verification"
        log.warning(
            "%s: peer %s %s; dropped for this download", self.game_id, lane.peer_id, lane.banned
        )
        self._requeue(chunk)
        for copies in self._copies.values():
            for t, owner in copies.items():
                if owner is lane:
                    t.cancel()

    def _failed(self, lane: PeerLane, chunk: ChunkRef, exc: BaseException) -> None:
        self.counters.failures += 1
        self._requeue(chunk)
        now = self._clock()
        if refusal_code(exc) in GONE_CODES:
            lane.gone = True
            return
        if now < lane.retry_at:
            return  # the same outage, already counted
        lane.failures += 1
        if lane.failures >= self.settings.max_failures:
            lane.gone = True
            return
        lane.retry_at = now + BACKOFF[min(lane.failures, len(BACKOFF)) - 1]
        log.info(
            "%s: peer %s failed (%s); retry in %.0f s",
            self.game_id,
            lane.peer_id,
            exc,
            lane.retry_at - now,
        )

    def _requeue(self, chunk: ChunkRef) -> None:
        if chunk in self._remaining and not self._copies.get(chunk):
            self._pending.appendleft(chunk)

    def _check_stalled(self, now: float) -> None:
        busy = any(self._copies.values())
        usable = any(lane.usable(now) for lane in self.lanes.values())
        if busy or usable:
            self._set_state(OpState.DOWNLOADING)
            self._stalled_since = None
            return
        if self._stalled_since is None:
            self._stalled_since = now
            self._next_version_check = now
            self._set_state(OpState.STALLED)
        if now - self._stalled_since >= self.settings.stall_timeout:
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
