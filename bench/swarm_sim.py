"""A swarm simulator that drives the real ``Planner`` (lanpeer/download/planner.py).

Hosts have link capacities (up and down); one or more seeders hold the whole game; leechers join
at given times, may leave, may be slow. Each leecher runs its own Planner with its own random
tie-break; a request is a flow from source to downloader, and the flows sharing a link share it
by max-min fairness (recomputed at every event, per source-downloader pair). A verified chunk,
and what a host is fetching, reach the other downloaders ``have_delay`` seconds later (the
debounce plus a round trip). Prints the efficiency: ideal time (``size / link``) over the time
of the last leecher, and how busy the seeder's uplink was.

    uv run python -m bench.swarm_sim                    # 10, 50, 200 hosts, 20 GiB, 1 GbE, 4 MiB
    uv run python -m bench.swarm_sim --hosts 10 --size-gib 2 --slow 1 --vanish 1 --late 2

Not a test: a model. It has no TCP slow start, no disk and no CPU; it shows what the planner's
choices cost when links are the only limit.
"""

from __future__ import annotations

import argparse
import heapq
import random
import time
from collections import deque
from dataclasses import dataclass, field

from lanpeer.download.plan import ChunkRef
from lanpeer.download.planner import HaveSet, Lane, Outcome, Planner, SchedulerSettings

GiB = 1 << 30
MiB = 1 << 20


@dataclass(eq=False)
class Host:
    name: str
    up: float  # bytes/s
    down: float
    seeder: bool = False
    join: float = 0.0
    leave: float | None = None  # vanishes at this time (a crash: its flows fail)
    planner: Planner | None = None
    holds: HaveSet = field(default_factory=HaveSet)
    done_at: float | None = None
    from_partial: int = 0
    received: int = 0
    sent: int = 0  # verified bytes others received from this host
    i: int = 0  # index into the simulator's per-host lists
    uploaded: float = 0.0  # every byte it sent, wasted endgame copies too


@dataclass(eq=False, slots=True)
class Flow:
    """One request on the wire: ``end`` is its pair's ``moved`` at which its last byte lands."""

    lane: Lane
    chunk: ChunkRef
    end: float
    seq: int
    cancelled: bool = False

    def __lt__(self, other: Flow) -> bool:  # heap order: soonest end, then oldest
        return (self.end, self.seq) < (other.end, other.seq)


@dataclass(eq=False, slots=True)
class Pair:
    """The flows from one source to one downloader. They cross the same two links, so under
    the fair share they all get one rate: the share is computed per pair (a downloader's
    pipeline to one source is up to 16 flows), and progress is one counter per pair."""

    src: Host
    dst: Host
    s: int
    d: int
    flows: list[Flow] = field(default_factory=list)  # a heap by end
    count: int = 0  # flows not cancelled
    rate: float = 0.0  # bytes/s of each flow
    moved: float = 0.0  # bytes each flow of this pair moved since the pair was made


class Sim:
    """The event loop. Costs are kept per event, not per host pair: every host's announced
    have-set is one ``HaveSet`` shared by all its viewers (they all learn a chunk at the same
    simulated time, so one object is exact), a downloader's source list is handed to its planner
    only when it changed (``set_sources``; otherwise ``sync_haves`` counts the increments), and
    the fair share is computed over integer-indexed lists.

    ``quantum``: an event (a flow ending) advances the clock by at least this much, and every
    flow that ends inside the step ends at its close. So a chunk may end up to ``quantum`` late
    and its link idle for that long (the error is pessimistic, never a gain); 0 is exact.
    """

    def __init__(self, hosts: list[Host], chunks: list[ChunkRef], have_delay: float,
                 settings: SchedulerSettings, seed: int,
                 announce_fetching: bool = True, quantum: float = 0.0) -> None:  # fmt: skip
        self.hosts, self.chunks, self.have_delay = hosts, chunks, have_delay
        self.settings, self.rng = settings, random.Random(seed)
        self.now = 0.0
        self.quantum = quantum
        self.announce_fetching = announce_fetching
        self.pairs: dict[tuple[int, int], Pair] = {}
        self.copies: dict[tuple[int, int], list[tuple[Pair, Flow]]] = {}  # (dst, chunk) -> on wire
        self._flow_seq = 0
        self.pending_haves: list[tuple[float, int, str, ChunkRef]] = []  # (at, seq, holder, c)
        self._seq = 0
        self.pending_fetching: deque[tuple[float, dict[str, frozenset[ChunkRef]]]] = deque()
        for i, h in enumerate(hosts):
            h.i = i
            if h.seeder:
                h.holds = HaveSet(chunks)
        self.by_name = {h.name: h for h in hosts}
        self.up = [h.up for h in hosts]
        self.down = [h.down for h in hosts]
        # What the other hosts have been told each leecher holds (after the have delay).
        self.published = {h.name: HaveSet() for h in hosts if not h.seeder}
        self.live = [False] * len(hosts)
        self.sources_version = 0  # bumped when a host joins, leaves, finishes or first has
        self._sources: dict[str, HaveSet | None] = {}
        self._sources_built = -1  # the version self._sources is of
        self._planned_version: dict[str, int] = {}  # per downloader: the version it was given
        self.events = 0

    def alive(self, h: Host) -> bool:
        return self.now >= h.join and (h.leave is None or self.now < h.leave)

    def start(self, h: Host) -> None:
        h.planner = Planner(self.chunks, self.settings, random.Random(self.rng.random()))

    def update_live(self) -> None:
        live = [self.alive(h) for h in self.hosts]
        if live != self.live:
            self.live = live
            self.sources_version += 1

    def sources(self, h: Host) -> dict[str, HaveSet | None]:
        if self._sources_built != self.sources_version:
            out: dict[str, HaveSet | None] = {}
            for other in self.hosts:
                if not self.live[other.i]:
                    continue
                if other.seeder or other.done_at is not None:
                    out[other.name] = None
                elif len(self.published[other.name]):
                    out[other.name] = self.published[other.name]
            self._sources = out
            self._sources_built = self.sources_version
        if h.name not in self._sources:
            return self._sources
        mine = dict(self._sources)
        del mine[h.name]
        return mine

    def refresh(self, h: Host) -> None:
        planner = h.planner
        assert planner is not None
        if self._planned_version.get(h.name) != self.sources_version:
            planner.set_sources(self.sources(h))
            self._planned_version[h.name] = self.sources_version
        else:
            planner.sync_haves()
        for lane, chunk in planner.next_requests(self.now):
            planner.asked(chunk, self.now)
            src = self.by_name[lane.peer_id]
            pair = self.pairs.get((src.i, h.i))
            if pair is None:
                pair = self.pairs[(src.i, h.i)] = Pair(src, h, src.i, h.i)
            self._flow_seq += 1
            flow = Flow(lane, chunk, pair.moved + chunk.length, self._flow_seq)
            heapq.heappush(pair.flows, flow)
            pair.count += 1
            self.copies.setdefault((h.i, chunk.index), []).append((pair, flow))

    def share(self) -> None:
        """Each flow gets the smaller of its source's up and its downloader's down link split
        evenly among the flows on that link, then spare capacity goes to flows with room at
        both ends for a few rounds (close to max-min fairness, which TCP flows approach)."""
        n = len(self.hosts)
        ups = [0] * n
        downs = [0] * n
        pairs = list(self.pairs.values())
        for p in pairs:
            ups[p.s] += p.count
            downs[p.d] += p.count
        up, down = self.up, self.down
        up_share = [up[i] / c if c else 0.0 for i, c in enumerate(ups)]
        down_share = [down[i] / c if c else 0.0 for i, c in enumerate(downs)]
        for p in pairs:
            a, b = up_share[p.s], down_share[p.d]
            p.rate = a if a < b else b
        for _ in range(4):  # hand spare capacity to flows with room at both ends (~max-min)
            spare_up = up[:]
            spare_down = down[:]
            for p in pairs:
                spare_up[p.s] -= p.rate * p.count
                spare_down[p.d] -= p.rate * p.count
            open_ = [p for p in pairs if spare_up[p.s] > 1.0 and spare_down[p.d] > 1.0]
            if not open_:
                break
            count_up = [0] * n
            count_down = [0] * n
            for p in open_:
                count_up[p.s] += p.count
                count_down[p.d] += p.count
            for p in open_:
                a, b = spare_up[p.s] / count_up[p.s], spare_down[p.d] / count_down[p.d]
                p.rate += a if a < b else b

    def run(self, tick: float, limit: float = 1e6) -> None:
        """Events: a flow ends (its downloader plans again) and a tick every ``tick`` seconds
        (haves announced since the last tick arrive, every downloader plans: timers)."""
        waiting = sorted((h for h in self.hosts if not h.seeder), key=lambda h: h.join)
        started: list[Host] = []
        dirty: set[Host] = set()
        next_tick = 0.0
        while self.now < limit:
            self.update_live()
            if self.now >= next_tick:
                next_tick = self.now + tick
                while waiting and waiting[0].join <= self.now:
                    h = waiting.pop(0)
                    self.start(h)
                    started.append(h)
                self.deliver_haves()
                if self.announce_fetching:  # what each is fetching, as of this tick
                    fetching: dict[str, set[ChunkRef]] = {h.name: set() for h in started}
                    for p in self.pairs.values():
                        held = fetching[p.dst.name]
                        for f in p.flows:
                            if not f.cancelled:
                                held.add(f.chunk)
                    # Told with the same delay as the haves (one Haves answer carries both).
                    snapshot = {name: frozenset(chunks) for name, chunks in fetching.items()}
                    self.pending_fetching.append((self.now + self.have_delay, snapshot))
                dirty.update(started)
            if not waiting and all(h.done_at is not None or not self.live[h.i] for h in started):
                break
            for h in dirty:
                if h.done_at is None and self.live[h.i]:
                    self.refresh(h)
            dirty.clear()
            self.share()
            self.events += 1
            first_end = limit
            for p in self.pairs.values():
                flows = p.flows
                while flows and flows[0].cancelled:
                    heapq.heappop(flows)
                if p.rate > 0 and flows:
                    t = (flows[0].end - p.moved) / p.rate
                    if t < first_end:
                        first_end = t
            step_to = min(next_tick, self.now + max(first_end, self.quantum))
            dt = step_to - self.now
            for p in self.pairs.values():
                p.moved += p.rate * dt
                p.src.uploaded += p.rate * p.count * dt
            self.now = step_to
            self.update_live()
            dirty.update(self.settle())

    def settle(self) -> set[Host]:
        touched: set[Host] = set()
        live = self.live
        verified: list[tuple[Host, ChunkRef]] = []
        for key, p in list(self.pairs.items()):
            dst = p.dst
            planner = dst.planner
            assert planner is not None
            if not live[p.s] or not live[p.d]:
                for f in p.flows:
                    self._unlist(p, f)
                    if live[p.d] and not f.cancelled:
                        planner.done(f.lane, f.chunk, Outcome.FAILED, self.now)
                        touched.add(dst)
                del self.pairs[key]
                continue
            flows = p.flows
            while flows and flows[0].end - p.moved <= 1e-3:
                f = heapq.heappop(flows)
                self._unlist(p, f)
                if f.cancelled:
                    continue
                p.count -= 1
                touched.add(dst)
                fresh = planner.wanted(f.chunk)
                planner.done(f.lane, f.chunk, Outcome.VERIFIED if fresh else Outcome.REDUNDANT,
                             self.now)  # fmt: skip
                if not fresh:
                    continue
                verified.append((dst, f.chunk))
                p.src.sent += f.chunk.length
                dst.received += f.chunk.length
                if not (p.src.seeder or p.src.done_at is not None):
                    dst.from_partial += f.chunk.length
                dst.holds.add(f.chunk)
                self._seq += 1
                heapq.heappush(
                    self.pending_haves, (self.now + self.have_delay, self._seq, dst.name, f.chunk)
                )
                if not planner.remaining:
                    dst.done_at = self.now
                    self.sources_version += 1  # a full source now
            if not p.count:
                del self.pairs[key]
        # The scheduler cancels the other copies of a verified chunk (endgame).
        for dst, chunk in verified:
            planner = dst.planner
            assert planner is not None
            for p, f in self.copies.pop((dst.i, chunk.index), []):
                if not f.cancelled:
                    f.cancelled = True
                    p.count -= 1
                    planner.done(f.lane, f.chunk, Outcome.CANCELLED, self.now)
                    if not p.count:
                        self.pairs.pop((p.s, p.d), None)
        return touched

    def _unlist(self, pair: Pair, flow: Flow) -> None:
        key = (pair.d, flow.chunk.index)
        copies = self.copies.get(key)
        if copies is not None:
            copies[:] = [pf for pf in copies if pf[1] is not flow]
            if not copies:
                del self.copies[key]

    def deliver_haves(self) -> None:
        while self.pending_haves and self.pending_haves[0][0] <= self.now:
            _, _, holder, chunk = heapq.heappop(self.pending_haves)
            haves = self.published[holder]
            if not haves:
                self.sources_version += 1  # a new partial source
            haves.add(chunk)
        while self.pending_fetching and self.pending_fetching[0][0] <= self.now:
            _, snapshot = self.pending_fetching.popleft()
            for name, chunks in snapshot.items():
                self.published[name].fetching = chunks


def scenario(hosts: int, size: int, chunk: int, link: float, *, seeders: int = 1, slow: int = 0,
             vanish: int = 0, late: int = 0, have_delay: float = 0.3,
             seed: int = 1,
             announce_fetching: bool = True, quantum: float = 0.0,
             settings: SchedulerSettings | None = None) -> dict[str, float]:  # fmt: skip
    chunks: list[ChunkRef] = [ChunkRef("game.bin", i, i * chunk, min(chunk, size - i * chunk),
                       i.to_bytes(32, "big")) for i in range(-(-size // chunk))]  # fmt: skip
    ideal = size / link
    rng = random.Random(seed)
    all_hosts = [Host(f"s{i}", link, link, seeder=True) for i in range(seeders)]
    leechers = []
    for i in range(hosts - seeders):
        h = Host(f"l{i}", link, link)
        if i < slow:
            h.up = h.down = link / 10  # a host on a 100 Mbit port
        elif i < slow + vanish:
            h.leave = ideal * 0.5  # disappears half-way
        elif i < slow + vanish + late:
            h.join = ideal * rng.uniform(0.3, 0.6)  # a late joiner
        leechers.append(h)
    all_hosts += leechers
    sim = Sim(
        all_hosts,
        chunks,
        have_delay,
        settings or SchedulerSettings(),
        seed,
        announce_fetching,
        quantum,
    )
    started = time.process_time()
    sim.run(tick=have_delay / 2)
    normal = [h for h in leechers if h.leave is None and h.up == link]
    last = max((h.done_at or float("inf")) - h.join for h in normal)
    partial = sum(h.from_partial for h in normal) / max(1, sum(h.received for h in normal))
    copies = sum(h.sent for h in all_hosts if h.seeder) / size
    end = max(h.done_at or 0.0 for h in normal)
    seeders = [h for h in all_hosts if h.seeder]
    busy = sum(h.uploaded for h in seeders) / max(1e-9, sum(h.up for h in seeders) * end)
    return {"hosts": hosts, "ideal": ideal, "last": last, "efficiency": ideal / last,
            "seeder_copies": copies, "seeder_busy": busy,
            "from_partial": partial, "cpu": time.process_time() - started,
            "events": sim.events}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="*", default=[10, 50, 200])
    parser.add_argument("--size-gib", type=float, default=20.0)
    parser.add_argument(
        "--chunk-mib",
        type=int,
        default=4,
        help="chunk size (the daemon's: 4)",
    )
    parser.add_argument("--link-mbit", type=float, default=1000.0)
    parser.add_argument("--seeders", type=int, default=1)
    parser.add_argument("--slow", type=int, default=0, help="leechers on a 10x slower link")
    parser.add_argument("--vanish", type=int, default=0, help="leechers gone half-way")
    parser.add_argument("--late", type=int, default=0, help="leechers joining 30-60 %% in")
    parser.add_argument("--have-delay", type=float, default=0.3)
    parser.add_argument("--no-fetching", dest="fetching", action="store_false",
                        help="have-sets without the chunks each host is fetching")  # fmt: skip
    parser.add_argument("--seed-any", dest="seed_unheld", action="store_false",
                        help="ask a full source for chunks partial sources hold, too")  # fmt: skip
    parser.add_argument(
        "--quantum",
        type=float,
        default=0.02,
        help="seconds: an event advances the clock at least this much (0: exact; 0.02 moved "
        "no figure by more than 0.5 %%, see ARCHITECTURE.md)",
    )
    args = parser.parse_args()
    link = args.link_mbit * 1e6 / 8
    size = int(args.size_gib * GiB)
    print(f"{args.size_gib:g} GiB game, {args.chunk_mib} MiB chunks, {args.link_mbit:g} Mbit/s "
          f"links, {args.seeders} seeder(s), slow={args.slow} vanish={args.vanish} "
          f"late={args.late}, have delay {args.have_delay} s")  # fmt: skip
    print(f"{'hosts':>6} {'ideal s':>8} {'last s':>8} {'efficiency':>10} {'from partial':>12} "
          f"{'seeder copies':>13} {'seeder busy':>11} {'sim cpu s':>9} {'events':>8}")  # fmt: skip
    for n in args.hosts:
        r = scenario(n, size, args.chunk_mib * MiB, link, seeders=args.seeders, slow=args.slow,
                     vanish=args.vanish, late=args.late, have_delay=args.have_delay,
                     announce_fetching=args.fetching,
                     settings=SchedulerSettings(seed_unheld_only=args.seed_unheld),
                     quantum=args.quantum)  # fmt: skip
        print(f"{n:>6} {r['ideal']:>8.1f} {r['last']:>8.1f} {r['efficiency']:>10.2f} "
              f"{r['from_partial']:>11.0%} {r['seeder_copies']:>13.2f} {r['seeder_busy']:>11.0%} "
              f"{r['cpu']:>9.1f} {r['events']:>8}")  # fmt: skip


if __name__ == "__main__":
    main()
