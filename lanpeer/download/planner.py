"""Planner: which chunk to ask which source for, and when. Sans-IO: no tasks, no sockets, no
clock of its own (every call that depends on time takes ``now``), so the scheduler drives it with
real requests and ``bench/swarm_sim.py`` drives it with simulated links.

Owns the per-source lanes (pipeline depth from measured throughput, failures, backoff, bans),
chunk selection (rarest first over the have-sets it is given, random tie-break, nearer sources
choose first, then faster ones), endgame copies and the ``stalled`` clock. Never fetches,
verifies or writes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from lanpeer.download.plan import ChunkRef
from lanpeer.download.progress import RateWindow

BACKOFF = (1.0, 2.0, 4.0)  # SPEC §7: transient peer errors back off 1 s, 2 s, 4 s
#: Round-trip times below this are one tier (the same switch or the next one: LAN noise); see
#: ``rtt_tiers``.
NEAR_RTT = 0.002


@dataclass(slots=True)
class SchedulerSettings:
    # Bytes in flight per peer ~ its rate x this latency: enough to hide a LAN round trip and a
    # disk hiccup, small enough that a dying peer strands few chunks.
    target_latency: float = 0.25
    min_depth: int = 2
    max_depth: int = 16
    max_failures: int = 4  # a 4th failure in a row after 1+2+4 s of backoff drops the peer
    stall_timeout: float = 600.0  # fail a download that had no usable source this long
    # Requests out at once over all sources. A download spread over many peers at once gets
    # every chunk late (its link split many ways) and has nothing to share meanwhile; a few
    # chunks per fast peer keep the link full and chunks landing early (cf. BitTorrent's ~4
    # unchoked peers). A bound, not a tuning knob: in bench/swarm_sim.py lower values (6, 12)
    # made 10-host parties slower, because the fastest source (the seeder) takes the budget.
    max_in_flight: int = 64
    endgame_copies: int = 2  # at most this many requests for one chunk near the end
    # A full source with a request out is asked only for chunks no listed partial source holds
    # or fetches: its uplink is the party's scarcest link, so it should send each chunk about
    # once while the leechers trade the rest (super-seeding, decided by the downloaders). An
    # idle full source still gets one request for anything. Figures with and without it:
    # ARCHITECTURE.md "Swarm figures".
    seed_unheld_only: bool = True
    # An idle peer re-requests a chunk only once it has been outstanding this long: long enough
    # that a healthy LAN peer has answered, so endgame copies are rare and never wasted in bulk.
    endgame_after: float = 1.0
    sources_poll: float = 5.0  # re-read sources_for at least this often
    request_timeout: float = 60.0  # one chunk from one peer; a hung peer is a failing peer
    version_check_every: float = 2.0  # while stalled: ask whether the version still exists


class HaveSet:
    """The chunks one partial source holds. It only grows; a source that restarts gets a new one.

    ``order`` keeps arrival order so a planner counts increments without rescanning the set.
    ``fetching``: chunks the source is fetching now (replaced whole): not served yet, but soon,
    so others need not ask a seeder for them too.
    """

    __slots__ = ("fetching", "held", "order")

    def __init__(self, chunks: Iterable[ChunkRef] = ()) -> None:
        self.held: set[ChunkRef] = set()
        self.order: list[ChunkRef] = []
        self.fetching: frozenset[ChunkRef] = frozenset()
        for chunk in chunks:
            self.add(chunk)

    def add(self, chunk: ChunkRef) -> bool:
        if chunk in self.held:
            return False
        self.held.add(chunk)
        self.order.append(chunk)
        return True

    def __len__(self) -> int:
        return len(self.held)

    def __contains__(self, chunk: object) -> bool:
        return chunk in self.held


class Outcome(Enum):
    VERIFIED = "verified"
    REDUNDANT = "redundant"  # an endgame copy that arrived after another copy was verified
    CANCELLED = "cancelled"  # we cancelled it (another copy won, or its peer was banned)
    MISMATCH = "mismatch"  # bytes failing BLAKE3: the peer is banned for this download
    FAILED = "failed"  # transient: timeout, connection lost, busy
    GONE = "gone"  # a typed refusal saying the peer no longer serves this chunk or version


@dataclass(eq=False, slots=True)
class Lane:
    """One source's share of the download."""

    peer_id: str
    haves: HaveSet | None = None  # None: a full source, it holds every chunk
    window: RateWindow = field(default_factory=RateWindow)
    in_flight: int = 0
    failures: int = 0
    retry_at: float = 0.0
    listed: bool = True
    banned: str | None = None  # sent bad bytes: never again in this download
    gone: bool = False  # refused or failed too often: until the source list changes
    verified: int = 0  # chunks this peer delivered intact
    counted: int = 0  # how many of haves.order are in the planner's availability counts
    counted_fetching: frozenset[ChunkRef] = frozenset()  # haves.fetching as counted
    # (len(haves.order), requeue generation) when it last held nothing pending: until either
    # moves, it still holds nothing we need (pending only shrinks between requeues).
    dry: tuple[int, int] | None = None
    rtt: float | None = None  # smoothed round trip in seconds, None: not measured

    @property
    def partial(self) -> bool:
        return self.haves is not None

    def holds(self, chunk: ChunkRef) -> bool:
        return self.haves is None or chunk in self.haves.held

    def usable(self, now: float) -> bool:
        return self.listed and not self.banned and not self.gone and now >= self.retry_at

    def depth(
        self, now: float, chunk_len: int, s: SchedulerSettings, rate: float | None = None
    ) -> int:
        """Requests to keep out; ``rate``: ``window.rate(now)`` if the caller has it."""
        if self.failures or not self.verified:
            # Failing peers get less; a new peer gets one request until it has proven itself
            # (which also lets its transport set up one connection instead of racing several).
            return 1
        if rate is None:
            rate = self.window.rate(now)
        want = math.ceil(rate * s.target_latency / max(chunk_len, 1)) + 1
        return max(s.min_depth, min(s.max_depth, want))


def rtt_tiers(rtts: Iterable[float | None]) -> dict[float | None, int]:
    """Each measured RTT's tier: 0 up to twice the lowest (or ``NEAR_RTT``, if that is more),
    then one tier per further doubling. Coarse on purpose, so measurement noise between hosts on
    one LAN changes nothing. An unknown RTT (None, absent) is tier 0: unmeasured is not far."""
    known = [r for r in rtts if r is not None]
    if not known:
        return {}
    base = max(min(known), NEAR_RTT / 2)
    return {r: max(0, math.ceil(math.log2(r / base)) - 1) for r in known}


class Planner:
    def __init__(
        self,
        chunks: Iterable[ChunkRef],
        settings: SchedulerSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or SchedulerSettings()
        rng = rng or random.Random()
        self.remaining: set[ChunkRef] = set(chunks)
        self._pending: set[ChunkRef] = set(self.remaining)  # remaining, nothing in flight
        # Random tie-break, fixed per download: leechers that see the same availability still
        # ask the seeder for different chunks, and then have something to trade.
        self._tie = {c: rng.random() for c in self.remaining}
        # How many partial sources hold each remaining chunk (full sources hold all alike).
        self._holders: dict[ChunkRef, int] = dict.fromkeys(self.remaining, 0)
        self._soon: dict[ChunkRef, int] = dict.fromkeys(self.remaining, 0)  # being fetched by
        self._copies: dict[ChunkRef, list[Lane]] = {}
        self._asked: dict[ChunkRef, float] = {}  # when the first outstanding copy went out
        self._in_flight = 0  # requests out over all lanes
        self._requeues = 0  # chunks put back into _pending so far (see Lane.dry)
        self._aged: list[ChunkRef] | None = None  # this next_requests call's endgame candidates
        self.chunk_len = max((c.length for c in self.remaining), default=1)
        self.lanes: dict[str, Lane] = {}
        self._stalled_since: float | None = None

    # -- sources -------------------------------------------------------------------------------

    def set_sources(self, sources: Mapping[str, HaveSet | None], fresh: Iterable[str] = ()) -> None:
        """The sources listed now (peer -> its have-set, None for a full source). A peer in
        ``fresh`` has a new session or listing: it gets another chance (bans stay)."""
        renewed = set(fresh)
        for lane in self.lanes.values():
            listed = lane.peer_id in sources
            if lane.listed and not listed:
                self._uncount(lane)
            lane.listed = listed
        for peer_id, haves in sources.items():
            known = self.lanes.get(peer_id)
            if known is None:
                known = self.lanes[peer_id] = Lane(peer_id, haves)
            lane = known
            if lane.haves is not haves:
                self._uncount(lane)
                lane.haves = haves
            if peer_id in renewed or lane.gone:
                lane.gone, lane.failures, lane.retry_at = False, 0, 0.0
        self.sync_haves()

    def set_rtt(self, peer_id: str, rtt: float | None) -> None:
        """The source's latest smoothed round-trip time (seconds), None when unknown."""
        lane = self.lanes.get(peer_id)
        if lane is not None:
            lane.rtt = rtt if rtt is not None and rtt > 0 else None

    def sync_haves(self) -> None:
        """Count the chunks partial sources announced since the last call."""
        for lane in self.lanes.values():
            if lane.haves is None or not lane.listed or lane.banned or lane.gone:
                continue
            order = lane.haves.order
            for chunk in order[lane.counted :]:
                if chunk in self._holders:
                    self._holders[chunk] += 1
            lane.counted = len(order)
            fetching = lane.haves.fetching
            if fetching is not lane.counted_fetching:
                self._count_soon(lane.counted_fetching - fetching, -1)
                self._count_soon(fetching - lane.counted_fetching, 1)
                lane.counted_fetching = fetching

    def _count_soon(self, chunks: Iterable[ChunkRef], step: int) -> None:
        soon = self._soon
        for chunk in chunks:
            if chunk in soon:
                soon[chunk] += step

    def _uncount(self, lane: Lane) -> None:
        if lane.haves is not None:
            for chunk in lane.haves.order[: lane.counted]:
                if chunk in self._holders:
                    self._holders[chunk] -= 1
        self._count_soon(lane.counted_fetching, -1)
        lane.dry = None
        lane.counted = 0
        lane.counted_fetching = frozenset()

    def holders(self, chunk: ChunkRef) -> int:
        """Partial sources holding ``chunk`` (a test and simulator probe)."""
        return self._holders.get(chunk, 0)

    # -- requests ------------------------------------------------------------------------------

    def next_requests(self, now: float) -> list[tuple[Lane, ChunkRef]]:
        """Fill every usable lane's pipeline; the caller must send each request it gets."""
        out: list[tuple[Lane, ChunkRef]] = []
        budget = self.settings.max_in_flight - self._in_flight
        if budget <= 0:
            return out
        usable = [lane for lane in self.lanes.values() if lane.usable(now)]
        tiers = rtt_tiers(lane.rtt for lane in usable)
        rated = [(tiers.get(lane.rtt, 0), -lane.window.rate(now), lane) for lane in usable]
        # Nearest tier picks first, fastest first within a tier (a stable sort: equal lanes keep
        # their order). Each lane takes the rarest chunk it holds, up to its pipeline depth, so
        # a chunk two lanes hold goes to the nearer one while it has room, and a far lane still
        # gets what nearer ones do not hold or have no room for.
        rated.sort(key=lambda t: t[:2])
        self._aged = None
        for _tier, neg_rate, lane in rated:
            rate = -neg_rate
            depth = lane.depth(now, self.chunk_len, self.settings, rate)
            while lane.in_flight < depth and budget > 0:
                chunk = self._pick(lane, now)
                if chunk is None:
                    break
                self._send(lane, chunk)
                out.append((lane, chunk))
                budget -= 1
        return out

    def _pick(self, lane: Lane, now: float) -> ChunkRef | None:
        pending = self._pending
        best = None
        mark = (len(lane.haves.order), self._requeues) if lane.haves is not None else None
        if pending and (mark is None or lane.dry != mark):
            held = lane.haves.held if lane.haves is not None else None
            holders, soon, tie = self._holders, self._soon, self._tie
            if held is None and self.settings.seed_unheld_only:
                candidates: Iterable[ChunkRef] = (c for c in pending if not holders[c] + soon[c])
            elif held is None:
                candidates = pending
            elif len(held) < len(pending):
                candidates = (c for c in held if c in pending)
            else:
                candidates = (c for c in pending if c in held)

            # A chunk another downloader is fetching counts as held: it will be, before long.
            def key(c: ChunkRef) -> tuple[int, float]:
                return holders[c] + soon[c], tie[c]

            best = min(candidates, key=key, default=None)
            if best is None and held is None and not lane.in_flight:
                # Everything left is held or on its way elsewhere: an idle full source still
                # gets one request, so a slow or stuck partial holder never holds us up.
                best = min(pending, key=key)
            if best is None:
                lane.dry = mark
        if best is not None or lane.in_flight or not self._copies:
            return best
        # Endgame: nothing left for this peer to start and it is idle, so it re-requests the
        # chunk it holds that has been outstanding longest, if that is overdue.
        s = self.settings
        asked = self._asked
        if self._aged is None:  # once per call: asked later is not overdue, whatever the pace
            soonest = now - s.endgame_after
            self._aged = [c for c in self._copies if asked.get(c, now) <= soonest]
        overdue = []
        for c in self._aged:
            copies = self._copies.get(c)
            if (
                copies
                and len(copies) < s.endgame_copies
                and lane not in copies
                and lane.holds(c)
                and now - asked.get(c, now) >= self._overdue_after(c, copies, now)
            ):
                overdue.append(c)
        return min(overdue, key=lambda c: self._asked.get(c, now), default=None)

    def _overdue_after(self, chunk: ChunkRef, copies: list[Lane], now: float) -> float:
        """``endgame_after``, or twice the time the chunk's source needs at its measured rate
        if that is longer: a copy of a chunk still coming at a shared seeder's pace would only
        take more of that seeder's uplink."""
        if not copies:
            return self.settings.endgame_after
        first = copies[0]  # its requests share its rate
        rate = first.window.rate(now)
        expected = 2 * chunk.length * max(1, first.in_flight) / rate if rate > 0 else 0.0
        return max(self.settings.endgame_after, expected)

    def _send(self, lane: Lane, chunk: ChunkRef) -> None:
        self._pending.discard(chunk)
        self._copies.setdefault(chunk, []).append(lane)
        lane.in_flight += 1
        self._in_flight += 1

    def outstanding(self) -> frozenset[ChunkRef]:
        """Chunks with a request out now."""
        return frozenset(self._copies)

    def asked(self, chunk: ChunkRef, now: float) -> None:
        """A request's bytes were asked for (after any bandwidth-cap wait): its endgame clock."""
        self._asked.setdefault(chunk, now)

    def wanted(self, chunk: ChunkRef) -> bool:
        return chunk in self.remaining

    def done(self, lane: Lane, chunk: ChunkRef, outcome: Outcome, now: float) -> None:
        """One request ended. The caller cancels the other copies of a VERIFIED chunk and every
        request of a lane whose outcome was MISMATCH (``lane.banned`` is then set)."""
        copies = self._copies.get(chunk, [])
        if lane in copies:
            copies.remove(lane)
        if not copies:
            self._copies.pop(chunk, None)
            self._asked.pop(chunk, None)
        lane.in_flight -= 1
        self._in_flight -= 1
        if outcome is Outcome.VERIFIED and chunk in self.remaining:
            self.remaining.discard(chunk)
            self._holders.pop(chunk, None)
            self._soon.pop(chunk, None)
            lane.window.add(now, chunk.length)
            lane.failures = 0
            lane.verified += 1
            return
        if outcome is Outcome.MISMATCH:
            lane.banned = "sent a chunk that failed BLAKE3 verification"
            self._uncount(lane)
        elif outcome is Outcome.GONE:
            lane.gone = True
            self._uncount(lane)
        elif outcome is Outcome.FAILED:
            self._failed(lane, now)
        self._requeue(chunk)

    def _failed(self, lane: Lane, now: float) -> None:
        if now < lane.retry_at:
            return  # the same outage, already counted
        lane.failures += 1
        if lane.failures >= self.settings.max_failures:
            lane.gone = True
            self._uncount(lane)  # what it holds must come from elsewhere, a seeder too
            return
        lane.retry_at = now + BACKOFF[min(lane.failures, len(BACKOFF)) - 1]

    def _requeue(self, chunk: ChunkRef) -> None:
        if chunk in self.remaining and not self._copies.get(chunk) and chunk not in self._pending:
            self._pending.add(chunk)
            self._requeues += 1

    # -- time ----------------------------------------------------------------------------------

    def stalled(self, now: float) -> bool:
        """Whether no request is out and no listed source can serve a remaining chunk;
        starts or clears the stall clock."""
        busy = bool(self._copies)
        if busy or any(lane.usable(now) and self._useful(lane) for lane in self.lanes.values()):
            self._stalled_since = None
            return False
        if self._stalled_since is None:
            self._stalled_since = now
        return True

    def _useful(self, lane: Lane) -> bool:
        if lane.haves is None:
            return True
        return any(c in self.remaining for c in lane.haves.held)

    def stalled_for(self, now: float) -> float:
        return 0.0 if self._stalled_since is None else now - self._stalled_since

    def deadline(self, now: float) -> float:
        """Seconds until the planner wants to be asked again without any other event."""
        s = self.settings
        times = [lane.retry_at - now for lane in self.lanes.values() if lane.retry_at > now]
        if self._stalled_since is not None:
            times.append(self._stalled_since + s.stall_timeout - now)
        if self._asked:
            times.append(min(self._asked.values()) + s.endgame_after - now)
        # Past deadlines were handled by this turn's requests; never spin on them.
        return min([s.sources_poll, *(t for t in times if t > 0)])
